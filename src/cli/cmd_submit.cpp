// segnode submit --server URL --algorithm NAME --input DIR [--set K=V]... [--outputs LIST]
//                [--destination PEER] [--wait] [--download OUT]
// PlatiPy's client script as one command: upload the series in DIR by STOW-RS (streamed from
// the files), complete it, create the job, poll it showing its timeline, download the outputs.
#include "cli_common.hpp"
#include "segnode/api/http_client.hpp"
#include "segnode/dicom/receive_handler.hpp"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <random>
#include <set>
#include <thread>

namespace segnode::cli {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

struct SubmitOptions {
    std::string algorithm;
    std::string input;
    std::vector<std::string> settings;
    std::string outputs = "seg,rtstruct,labelmap";
    std::string destination = "none";
    bool wait = false;
    std::string download;
    double poll_s = 0.5;
};

/// The DICOM Part 10 files under `dir` (by the "DICM" marker), sorted by path; the others are
/// counted in `skipped`.
std::vector<fs::path> dicom_files(const fs::path& dir, std::size_t& skipped) {
    std::vector<fs::path> files;
    for (const auto& entry : fs::recursive_directory_iterator(dir)) {
        if (!entry.is_regular_file()) {
            continue;
        }
        std::ifstream in(entry.path(), std::ios::binary);
        char magic[132] = {};
        if (in.read(magic, sizeof magic) && std::string_view(magic + 128, 4) == "DICM") {
            files.push_back(entry.path());
        } else {
            ++skipped;
        }
    }
    std::sort(files.begin(), files.end());
    return files;
}

std::string random_boundary() {
    std::random_device rd;
    std::string b = "segnode-";
    const char* hex = "0123456789abcdef";
    for (int i = 0; i < 32; ++i) {
        b += hex[rd() % 16];
    }
    return b;
}

std::string problem_detail(const api::ClientResponse& res) {
    const auto parsed = json::parse(res.body, nullptr, false);
    if (!parsed.is_discarded() && parsed.is_object() && parsed.contains("detail") &&
        parsed["detail"].is_string()) {
        return parsed["detail"].get<std::string>();
    }
    return "HTTP " + std::to_string(res.status);
}

/// The value of a DICOM JSON attribute `tag` of `item`, or "".
std::string dicom_json_value(const json& item, const char* tag) {
    if (!item.contains(tag) || !item[tag].contains("Value") || item[tag]["Value"].empty()) {
        return {};
    }
    const json& v = item[tag]["Value"][0];
    return v.is_string() ? v.get<std::string>() : v.dump();
}

/// Uploads `files` in one STOW-RS request; prints every failed instance with its file.
/// Returns the number stored, or -1 after printing why nothing could be stored.
int upload(const Remote& remote, const std::vector<fs::path>& files) {
    const std::string boundary = random_boundary();
    const std::string head = "Content-Type: application/dicom\r\n\r\n";
    std::uint64_t length = 0;
    for (const fs::path& f : files) {
        length += 2 + boundary.size() + 2 + head.size() + fs::file_size(f) + 2;
    }
    length += 2 + boundary.size() + 2 + 2;
    std::size_t index = 0;
    std::ifstream current;
    bool closed = false;
    const api::BodySource next = [&]() -> Result<std::string> {
        if (current.is_open()) {
            std::string piece(256 * 1024, '\0');
            current.read(piece.data(), static_cast<std::streamsize>(piece.size()));
            piece.resize(static_cast<std::size_t>(current.gcount()));
            if (!piece.empty()) {
                return piece;
            }
            if (current.bad()) {
                return Error{"cannot read " + files[index - 1].string()};
            }
            current.close();
            return std::string("\r\n");
        }
        if (index < files.size()) {
            current.open(files[index], std::ios::binary);
            if (!current) {
                return Error{"cannot open " + files[index].string()};
            }
            ++index;
            return "--" + boundary + "\r\n" + head;
        }
        if (!closed) {
            closed = true;
            return "--" + boundary + "--\r\n";
        }
        return std::string();
    };
    auto res =
        api::http_upload(remote.url, "/api/v1/studies", remote.key,
                         "multipart/related; type=\"application/dicom\"; boundary=" + boundary,
                         length, next, remote.ca_file);
    if (!res) {
        std::cerr << "submit: upload: " << res.error().message << "\n";
        return -1;
    }
    const auto body = json::parse(res->body, nullptr, false);
    if (res->content_type != "application/dicom+json" || body.is_discarded()) {
        std::cerr << "submit: upload refused: " << problem_detail(*res) << "\n";
        return -1;
    }
    int stored = 0;
    int failed = 0;
    if (body.contains("00081199")) {
        stored = static_cast<int>(body["00081199"]["Value"].size());
    }
    if (body.contains("00081198")) {
        for (const json& item : body["00081198"]["Value"]) {
            ++failed;
            std::string reason = dicom_json_value(item, "00091001");
            std::string file = "?";
            // The server names the part ("part 3 ..."): parts are the files in order.
            std::size_t part = 0;
            if (std::sscanf(reason.c_str(), "part %zu", &part) == 1 && part >= 1 &&
                part <= files.size()) {
                file = files[part - 1].string();
            }
            std::cerr << "submit: upload: " << file << ": " << reason << " (failure reason 0x"
                      << std::hex << std::uppercase
                      << std::stoi(dicom_json_value(item, "00081197").empty()
                                       ? "0"
                                       : dicom_json_value(item, "00081197"))
                      << std::dec << std::nouppercase << ")\n";
        }
    }
    if (failed > 0) {
        std::cerr << "submit: " << failed << " of " << files.size() << " file(s) failed to upload ("
                  << stored << " stored); no job was created\n";
        return -1;
    }
    return stored;
}

bool save(const fs::path& path, const std::string& data) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
    return static_cast<bool>(out);
}

int run_submit(const GlobalOptions& global, const SubmitOptions& o) {
    bool failed = false;
    auto remote = resolve_remote(global, failed);
    if (failed) {
        return 2;
    }
    if (!remote) {
        std::cerr << "submit: needs --server URL (or $SEGNODE_SERVER) and an API key "
                     "($SEGNODE_API_KEY or --key-file)\n";
        return 2;
    }
    std::error_code ec;
    if (!fs::is_directory(o.input, ec)) {
        std::cerr << "submit: --input " << o.input << " is not a directory\n";
        return 2;
    }
    json settings = json::object();
    for (const std::string& kv : o.settings) {
        const auto eq = kv.find('=');
        if (eq == std::string::npos || eq == 0) {
            std::cerr << "submit: --set " << kv << ": expected KEY=VALUE\n";
            return 2;
        }
        settings[kv.substr(0, eq)] = kv.substr(eq + 1);
    }
    json outputs = json::array();
    std::stringstream list(o.outputs);
    for (std::string item; std::getline(list, item, ',');) {
        outputs.push_back(item);
    }

    std::size_t skipped = 0;
    const auto files = dicom_files(o.input, skipped);
    if (files.empty()) {
        std::cerr << "submit: no DICOM files (with the DICM marker) in " << o.input << "\n";
        return 2;
    }
    std::set<std::string> series;
    for (const fs::path& f : files) {
        auto header = dicom::read_received_file(f);
        if (!header) {
            std::cerr << "submit: " << f.string() << ": " << header.error().message << "\n";
            return 2;
        }
        series.insert(header->series_uid);
    }
    if (series.size() != 1) {
        std::cerr << "submit: " << o.input << " holds " << series.size()
                  << " series; give one series per submit\n";
        return 2;
    }
    const std::string series_uid = *series.begin();
    std::cout << "uploading " << files.size() << " file(s) of series " << series_uid
              << (skipped > 0 ? " (" + std::to_string(skipped) + " non-DICOM file(s) skipped)"
                              : std::string())
              << std::endl;
    const int stored = upload(*remote, files);
    if (stored < 0) {
        return 1;
    }
    std::cout << "stored " << stored << " of " << files.size() << " instance(s)" << std::endl;

    auto complete =
        api::http_request(remote->url, "POST", "/api/v1/series/" + series_uid + "/complete",
                          remote->key, {}, remote->ca_file);
    if (!complete) {
        std::cerr << "submit: complete: " << complete.error().message << "\n";
        return 1;
    }
    if (complete->status != 200 && complete->status != 409) { // 409: completed already
        std::cerr << "submit: complete: " << problem_detail(*complete) << "\n";
        return 1;
    }
    const json request = {{"series_uid", series_uid},
                          {"algorithm", o.algorithm},
                          {"settings", settings},
                          {"outputs", outputs},
                          {"destination", o.destination}};
    int exit_code = 0;
    auto job = remote_json(*remote, "POST", "/api/v1/jobs", request.dump(), "submit", exit_code);
    if (!job) {
        return exit_code;
    }
    const std::string id = std::to_string((*job)["id"].get<std::int64_t>());
    std::cout << "job " << id << " " << (*job)["state"].get<std::string>() << ": " << o.algorithm
              << " on series " << series_uid << std::endl;
    if (!o.wait && o.download.empty()) {
        return 0;
    }

    std::size_t shown = 0;
    std::string state;
    while (true) {
        auto now = remote_json(*remote, "GET", "/api/v1/jobs/" + id, {}, "submit", exit_code);
        if (!now) {
            return exit_code;
        }
        const json& timeline = (*now)["timeline"];
        for (; shown < timeline.size(); ++shown) {
            const json& e = timeline[shown];
            std::cout << "  " << e["at"].get<std::string>() << "  " << e["event"].get<std::string>()
                      << (e["detail"].get<std::string>().empty()
                              ? std::string()
                              : ": " + e["detail"].get<std::string>())
                      << std::endl;
        }
        state = (*now)["state"].get<std::string>();
        if (state == "done" || state == "failed" || state == "cancelled") {
            if (state != "done") {
                std::cerr << "submit: job " << id << " " << state
                          << ((*now)["error"].get<std::string>().empty()
                                  ? std::string()
                                  : ": " + (*now)["error"].get<std::string>())
                          << "\n";
                return 1;
            }
            break;
        }
        std::this_thread::sleep_for(std::chrono::duration<double>(o.poll_s));
    }
    std::cout << "job " << id << " done" << std::endl;
    if (o.download.empty()) {
        return 0;
    }
    fs::create_directories(o.download, ec);
    if (ec) {
        std::cerr << "submit: --download " << o.download << ": " << ec.message() << "\n";
        return 1;
    }
    auto listing =
        remote_json(*remote, "GET", "/api/v1/jobs/" + id + "/outputs", {}, "submit", exit_code);
    if (!listing) {
        return exit_code;
    }
    for (const json& item : (*listing)["items"]) {
        const std::string name = item["name"].get<std::string>();
        auto file = api::http_request(remote->url, "GET", item["href"].get<std::string>(),
                                      remote->key, {}, remote->ca_file);
        if (!file || file->status != 200) {
            std::cerr << "submit: download " << name << ": "
                      << (file ? problem_detail(*file) : file.error().message) << "\n";
            return 1;
        }
        const fs::path path = fs::path(o.download) / name;
        if (!save(path, file->body)) {
            std::cerr << "submit: cannot write " << path.string() << "\n";
            return 1;
        }
        std::cout << "saved " << path.string() << " (" << file->body.size() << " bytes)\n";
    }
    return 0;
}

} // namespace

void add_submit_command(CLI::App& app, GlobalOptions& options, int& exit_code) {
    auto o = std::make_shared<SubmitOptions>();
    auto* cmd = app.add_subcommand(
        "submit", "Upload a series to a remote node (STOW-RS), run an algorithm on it, wait "
                  "and download the results (needs --server and an API key with the submit "
                  "role)");
    cmd->add_option("--algorithm", o->algorithm, "Algorithm to run")->required();
    cmd->add_option("--input", o->input, "Folder with the series' DICOM files")->required();
    cmd->add_option("--set", o->settings, "Algorithm setting KEY=VALUE (repeatable)");
    cmd->add_option("--outputs", o->outputs,
                    "Comma-separated outputs: seg, rtstruct, labelmap (default: all three)");
    cmd->add_option("--destination", o->destination,
                    "Peer to send the DICOM results to (default: none, keep for download)");
    cmd->add_flag("--wait", o->wait, "Poll the job, showing its progress, until it ends");
    cmd->add_option("--download", o->download,
                    "Save the outputs into this folder when the job is done (implies --wait)");
    cmd->add_option("--poll-interval", o->poll_s, "Seconds between polls (default 0.5)")
        ->check(CLI::Range(0.05, 60.0));
    cmd->callback([&options, &exit_code, o] { exit_code = run_submit(options, *o); });
}

} // namespace segnode::cli
