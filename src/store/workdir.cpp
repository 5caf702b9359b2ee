#include "segnode/store/workdir.hpp"

#include "segnode/core/clock.hpp"
#include "segnode/core/uid.hpp"

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fmt/format.h>
#include <memory>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <vector>

namespace segnode::store {
namespace fs = std::filesystem;

namespace {

std::string errno_text(int err) {
    return std::strerror(err);
}

class Fd {
public:
    explicit Fd(int fd) : m_fd(fd) {}
    ~Fd() {
        if (m_fd >= 0) {
            ::close(m_fd);
        }
    }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
    [[nodiscard]] int get() const { return m_fd; }

private:
    int m_fd;
};

} // namespace

Workdir::Workdir(fs::path root) : m_root(std::move(root)) {}

Status Workdir::ensure() const {
    for (const auto& dir : {m_root, instances_dir(), jobs_dir(), quarantine_dir(), tmp_dir()}) {
        std::error_code ec;
        fs::create_directories(dir, ec);
        if (ec) {
            return Error{dir.string() + ": cannot create directory: " + ec.message()};
        }
        if (access(dir.c_str(), W_OK) != 0) {
            return Error{dir.string() + ": directory is not writable: " + errno_text(errno)};
        }
    }
    return ok_status();
}

Result<fs::path> Workdir::instance_relpath(const std::string& study_uid,
                                           const std::string& series_uid,
                                           const std::string& sop_uid) const {
    for (const auto* uid : {&study_uid, &series_uid, &sop_uid}) {
        if (auto problem = uid_problem(*uid)) {
            return Error{"invalid UID '" + *uid + "': " + *problem};
        }
    }
    return fs::path("instances") / study_uid / series_uid / (sop_uid + ".dcm");
}

fs::path Workdir::new_temp_path(const std::string& suffix) const {
    static std::atomic<std::uint64_t> counter{0};
    return tmp_dir() / fmt::format("{}-{}-{}{}", now_ms(), getpid(), counter.fetch_add(1), suffix);
}

std::size_t Workdir::clean_tmp() const {
    std::size_t removed = 0;
    std::error_code ec;
    for (fs::directory_iterator it(tmp_dir(), ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code rm_ec;
        if (fs::remove_all(it->path(), rm_ec) > 0 && !rm_ec) {
            ++removed;
        }
    }
    return removed;
}

Workdir::Lock::~Lock() {
    if (m_fd >= 0) {
        ::close(m_fd); // releases the flock
    }
}

Result<Workdir::Lock> Workdir::lock() const {
    const fs::path path = m_root / "segnode.lock";
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        return Error{path.string() + ": cannot open lock file: " + errno_text(errno)};
    }
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
        char buf[32] = {};
        const ssize_t n = ::pread(fd, buf, sizeof(buf) - 1, 0);
        ::close(fd);
        const std::string holder = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "?";
        return Error{"working directory " + m_root.string() +
                     " is in use by another segnode (pid " +
                     holder.substr(0, holder.find_first_of("\n")) + ")"};
    }
    const std::string pid = std::to_string(getpid()) + "\n";
    if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) < 0) {
        // The lock itself is held; the pid is only informational.
    }
    return Lock(fd);
}

Status Workdir::create_running_marker() const {
    const fs::path marker = running_marker();
    const Fd fd(::open(marker.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd.get() < 0) {
        return Error{marker.string() + ": cannot create: " + errno_text(errno)};
    }
    const std::string pid = std::to_string(getpid()) + "\n";
    if (::write(fd.get(), pid.data(), pid.size()) < 0 || ::fsync(fd.get()) != 0) {
        return Error{marker.string() + ": cannot write: " + errno_text(errno)};
    }
    return fsync_directory(m_root);
}

void Workdir::remove_running_marker() const {
    std::error_code ec;
    fs::remove(running_marker(), ec);
}

namespace {
constexpr const char* association_xattr = "user.segnode.association";
}

bool tag_association(const fs::path& file, std::int64_t association_id) {
    const std::string value = std::to_string(association_id);
    return ::setxattr(file.c_str(), association_xattr, value.data(), value.size(), 0) == 0;
}

std::optional<std::int64_t> association_tag(const fs::path& file) {
    char buf[32] = {};
    const ssize_t n = ::getxattr(file.c_str(), association_xattr, buf, sizeof(buf) - 1);
    if (n <= 0) {
        return std::nullopt;
    }
    try {
        std::size_t used = 0;
        const std::int64_t id = std::stoll(std::string(buf, static_cast<std::size_t>(n)), &used);
        if (used == static_cast<std::size_t>(n) && id > 0) {
            return id;
        }
    } catch (const std::exception&) {
    }
    return std::nullopt;
}

Status fsync_file(const fs::path& file) {
    const Fd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
    if (fd.get() < 0) {
        return Error{file.string() + ": open for fsync: " + errno_text(errno)};
    }
    if (::fsync(fd.get()) != 0) {
        return Error{file.string() + ": fsync: " + errno_text(errno)};
    }
    return ok_status();
}

Status fsync_directory(const fs::path& dir) {
    const Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (fd.get() < 0) {
        return Error{dir.string() + ": open directory for fsync: " + errno_text(errno)};
    }
    if (::fsync(fd.get()) != 0) {
        return Error{dir.string() + ": fsync directory: " + errno_text(errno)};
    }
    return ok_status();
}

Status create_directories_durable(const fs::path& dir, bool durable) {
    // Collect the missing components from the top down.
    std::vector<fs::path> missing;
    std::error_code ec;
    for (fs::path p = dir; !p.empty() && !fs::exists(p, ec); p = p.parent_path()) {
        missing.push_back(p);
        if (p == p.parent_path()) {
            break;
        }
    }
    for (auto it = missing.rbegin(); it != missing.rend(); ++it) {
        if (::mkdir(it->c_str(), 0755) != 0 && errno != EEXIST) {
            return Error{it->string() + ": cannot create directory: " + errno_text(errno)};
        }
        if (durable) {
            const fs::path parent = it->has_parent_path() ? it->parent_path() : fs::path(".");
            if (auto st = fsync_directory(parent); !st) {
                return st;
            }
        }
    }
    return ok_status();
}

Status durable_rename(const fs::path& from, const fs::path& to, bool durable) {
    if (durable) {
        if (auto st = fsync_file(from); !st) {
            return st;
        }
    }
    if (auto st = create_directories_durable(to.parent_path(), durable); !st) {
        return st;
    }
    if (std::rename(from.c_str(), to.c_str()) != 0) {
        return Error{"rename " + from.string() + " -> " + to.string() + ": " + errno_text(errno)};
    }
    if (durable) {
        return fsync_directory(to.parent_path());
    }
    return ok_status();
}

Result<bool> same_tail(const fs::path& a, std::uintmax_t offset_a, const fs::path& b,
                       std::uintmax_t offset_b) {
    std::error_code ec;
    const auto size_a = fs::file_size(a, ec);
    if (ec) {
        return Error{a.string() + ": " + ec.message()};
    }
    const auto size_b = fs::file_size(b, ec);
    if (ec) {
        return Error{b.string() + ": " + ec.message()};
    }
    if (size_a < offset_a || size_b < offset_b || size_a - offset_a != size_b - offset_b) {
        return false;
    }
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> fa(std::fopen(a.c_str(), "rb"), &std::fclose);
    std::unique_ptr<std::FILE, int (*)(std::FILE*)> fb(std::fopen(b.c_str(), "rb"), &std::fclose);
    if (!fa || !fb) {
        return Error{"cannot open " + (fa ? b : a).string() + " for comparison"};
    }
    if (std::fseek(fa.get(), static_cast<long>(offset_a), SEEK_SET) != 0 ||
        std::fseek(fb.get(), static_cast<long>(offset_b), SEEK_SET) != 0) {
        return Error{"seek failed while comparing " + a.string() + " and " + b.string()};
    }
    std::vector<char> buf_a(1 << 16);
    std::vector<char> buf_b(1 << 16);
    while (true) {
        const std::size_t na = std::fread(buf_a.data(), 1, buf_a.size(), fa.get());
        const std::size_t nb = std::fread(buf_b.data(), 1, buf_b.size(), fb.get());
        if (na != nb || std::memcmp(buf_a.data(), buf_b.data(), na) != 0) {
            return false;
        }
        if (na == 0) {
            return true;
        }
    }
}

} // namespace segnode::store
