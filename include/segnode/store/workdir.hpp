#pragma once
// Layout of the working directory and durable file operations. Paths built from UIDs require
// the UIDs to have passed segnode::uid_problem() already; the functions check again.
#include "segnode/core/result.hpp"

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace segnode::store {

class Workdir {
public:
    explicit Workdir(std::filesystem::path root);

    /// Creates the directory tree (instances/, jobs/, quarantine/, tmp/) if missing.
    Status ensure() const;

    [[nodiscard]] const std::filesystem::path& root() const { return m_root; }
    [[nodiscard]] std::filesystem::path db_path() const { return m_root / "segnode.db"; }
    [[nodiscard]] std::filesystem::path instances_dir() const { return m_root / "instances"; }
    [[nodiscard]] std::filesystem::path jobs_dir() const { return m_root / "jobs"; }
    [[nodiscard]] std::filesystem::path quarantine_dir() const { return m_root / "quarantine"; }
    [[nodiscard]] std::filesystem::path tmp_dir() const { return m_root / "tmp"; }

    /// instances/<study>/<series>/<sop>.dcm, relative to root(); error if a UID is invalid.
    [[nodiscard]] Result<std::filesystem::path> instance_relpath(const std::string& study_uid,
                                                                 const std::string& series_uid,
                                                                 const std::string& sop_uid) const;

    /// A fresh, unique path in tmp/ (nothing is created).
    [[nodiscard]] std::filesystem::path new_temp_path(const std::string& suffix) const;

    /// Removes leftovers in tmp/ from an earlier run (never acknowledged to anyone).
    [[nodiscard]] std::size_t clean_tmp() const;

    /// <root>/segnode.running: present while `segnode serve` runs; still there at start-up
    /// means the last run did not stop cleanly (crash, kill -9, power loss).
    [[nodiscard]] std::filesystem::path running_marker() const {
        return m_root / "segnode.running";
    }
    /// Creates the marker (durably: file and directory fsynced).
    Status create_running_marker() const;
    /// Removes it; call only after every database connection is closed.
    void remove_running_marker() const;

    /// Exclusive lock on <root>/segnode.lock, held while the returned object lives, so two
    /// nodes never serve one working directory (the second would delete the first's
    /// in-flight temp files). Fails with the holder's pid when already locked.
    class Lock {
    public:
        explicit Lock(int fd) : m_fd(fd) {}
        ~Lock();
        Lock(Lock&& other) noexcept : m_fd(other.m_fd) { other.m_fd = -1; }
        Lock& operator=(Lock&&) = delete;
        Lock(const Lock&) = delete;
        Lock& operator=(const Lock&) = delete;

    private:
        int m_fd;
    };
    [[nodiscard]] Result<Lock> lock() const;

private:
    std::filesystem::path m_root;
};

/// fsync() of a file's contents and metadata.
Status fsync_file(const std::filesystem::path& file);
/// fsync() of a directory, making entries created or renamed in it durable.
Status fsync_directory(const std::filesystem::path& dir);
/// Creates `dir` and missing parents; with `durable`, fsyncs the parent of each directory it
/// created so the new entries survive a crash.
Status create_directories_durable(const std::filesystem::path& dir, bool durable);
/// Best effort: records the receiving association's id on a file as the extended attribute
/// `user.segnode.association`, so start-up recovery can restore where an unindexed file came
/// from. False where the filesystem has no user xattrs (recovery then falls back).
bool tag_association(const std::filesystem::path& file, std::int64_t association_id);
/// The id recorded by tag_association(), if any.
std::optional<std::int64_t> association_tag(const std::filesystem::path& file);

/// rename(from, to) within one filesystem, creating to's parent; with `durable`, fsyncs the
/// file first and the destination directory afterwards.
Status durable_rename(const std::filesystem::path& from, const std::filesystem::path& to,
                      bool durable);
/// True if both files have the same bytes from `offset_a` / `offset_b` to their ends.
Result<bool> same_tail(const std::filesystem::path& a, std::uintmax_t offset_a,
                       const std::filesystem::path& b, std::uintmax_t offset_b);

} // namespace segnode::store
