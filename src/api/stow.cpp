// STOW-RS: the incremental multipart parser and one upload's parts stored through the
// Receiver (contract in docs/api.md, "Uploading a series").
#include "segnode/api/stow.hpp"

#include "segnode/dicom/sop_classes.hpp"

#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

namespace segnode::api {
namespace {

using json = nlohmann::json;

std::string lower(std::string_view text) {
    std::string s(text);
    for (char& ch : s) {
        ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    }
    return s;
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) {
        s.remove_suffix(1);
    }
    return s;
}

bool is_token(std::string_view s) {
    if (s.empty()) {
        return false;
    }
    for (const char ch : s) {
        if (static_cast<unsigned char>(ch) <= 32 || std::strchr("()<>@,;:\\\"/[]?={}", ch)) {
            return false;
        }
    }
    return true;
}

/// A DICOM JSON attribute (PS3.18 F.2) with one value.
json attribute(const char* vr, json value) {
    return {{"vr", vr}, {"Value", json::array({value})}};
}

} // namespace

std::optional<MediaType> parse_media_type(std::string_view text) {
    MediaType media;
    const auto semi = text.find(';');
    const std::string_view type = trim(text.substr(0, semi));
    const auto slash = type.find('/');
    if (slash == std::string_view::npos || !is_token(type.substr(0, slash)) ||
        !is_token(type.substr(slash + 1))) {
        return std::nullopt;
    }
    media.type = lower(type);
    std::size_t pos = semi;
    while (pos != std::string_view::npos && pos < text.size()) {
        ++pos; // past ';'
        while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t')) {
            ++pos;
        }
        if (pos >= text.size()) {
            break; // a trailing ';'
        }
        const auto eq = text.find('=', pos);
        if (eq == std::string_view::npos) {
            return std::nullopt;
        }
        const std::string_view name = trim(text.substr(pos, eq - pos));
        if (!is_token(name)) {
            return std::nullopt;
        }
        std::string value;
        pos = eq + 1;
        if (pos < text.size() && text[pos] == '"') {
            ++pos;
            bool closed = false;
            while (pos < text.size()) {
                const char ch = text[pos++];
                if (ch == '\\' && pos < text.size()) {
                    value += text[pos++];
                } else if (ch == '"') {
                    closed = true;
                    break;
                } else {
                    value += ch;
                }
            }
            if (!closed) {
                return std::nullopt;
            }
            const auto next = text.find(';', pos);
            if (!trim(text.substr(pos, next == std::string_view::npos ? next : next - pos))
                     .empty()) {
                return std::nullopt; // text after the closing quote
            }
            pos = next;
        } else {
            const auto next = text.find(';', pos);
            const std::string_view raw = trim(text.substr(pos, next - pos));
            if (!is_token(raw)) {
                return std::nullopt;
            }
            value = std::string(raw);
            pos = next;
        }
        media.params[lower(name)] = std::move(value);
    }
    return media;
}

// --- MultipartReader ----------------------------------------------------------------------

MultipartReader::MultipartReader(std::string boundary, Callbacks callbacks,
                                 std::size_t max_header_bytes)
    : m_dash_boundary("--" + boundary), m_delimiter("\r\n--" + boundary),
      m_callbacks(std::move(callbacks)), m_max_header_bytes(max_header_bytes) {}

Status MultipartReader::fail(std::string message) {
    m_state = State::Failed;
    m_error = message;
    return Error{std::move(message)};
}

Status MultipartReader::feed(std::string_view bytes) {
    if (m_state == State::Failed) {
        return Error{m_error};
    }
    if (m_state == State::Epilogue) {
        return ok_status(); // after the closing boundary: ignored (RFC 2046)
    }
    m_buffer.append(bytes);
    bool progressed = true;
    while (progressed && m_state != State::Epilogue) {
        progressed = false;
        if (auto st = step(progressed); !st) {
            return st;
        }
    }
    if (m_state == State::Epilogue) {
        m_buffer.clear();
    }
    return ok_status();
}

Status MultipartReader::step(bool& progressed) {
    switch (m_state) {
    case State::Preamble: {
        // The first boundary starts the body or follows a CRLF.
        std::size_t from = 0;
        while (true) {
            const auto at = m_buffer.find(m_dash_boundary, from);
            if (at == std::string::npos) {
                // Keep what could be the start of a boundary split across pieces.
                const std::size_t keep = m_dash_boundary.size() + 1;
                if (m_buffer.size() > keep) {
                    m_buffer.erase(0, m_buffer.size() - keep);
                }
                return ok_status();
            }
            if (at == 0 || (at >= 2 && m_buffer.compare(at - 2, 2, "\r\n") == 0)) {
                m_buffer.erase(0, at + m_dash_boundary.size());
                m_state = State::AfterDelimiter;
                progressed = true;
                return ok_status();
            }
            from = at + 1;
        }
    }
    case State::AfterDelimiter: {
        // "--" closes the body; otherwise optional padding (spaces, tabs), then CRLF.
        if (m_buffer.size() < 2) {
            return ok_status();
        }
        if (m_buffer.compare(0, 2, "--") == 0) {
            m_state = State::Epilogue;
            progressed = true;
            return ok_status();
        }
        std::size_t i = 0;
        while (i < m_buffer.size() && (m_buffer[i] == ' ' || m_buffer[i] == '\t')) {
            ++i;
        }
        if (i + 2 > m_buffer.size()) {
            if (i > 256) {
                return fail("malformed multipart boundary line after part " +
                            std::to_string(m_parts));
            }
            return ok_status();
        }
        if (m_buffer.compare(i, 2, "\r\n") != 0) {
            return fail("malformed multipart boundary line after part " + std::to_string(m_parts) +
                        ": the boundary is followed by neither CRLF nor '--'");
        }
        m_buffer.erase(0, i + 2);
        m_state = State::Headers;
        progressed = true;
        return ok_status();
    }
    case State::Headers: {
        std::size_t end = 0;
        std::size_t body_start = 0;
        if (m_buffer.compare(0, 2, "\r\n") == 0) {
            end = 0;
            body_start = 2;
        } else {
            const auto at = m_buffer.find("\r\n\r\n");
            if (at == std::string::npos) {
                if (m_buffer.size() > m_max_header_bytes) {
                    return fail("the headers of part " + std::to_string(m_parts + 1) + " exceed " +
                                std::to_string(m_max_header_bytes) +
                                " bytes (or do not end with an empty line)");
                }
                return ok_status();
            }
            end = at + 2;
            body_start = at + 4;
        }
        if (end > m_max_header_bytes) {
            return fail("the headers of part " + std::to_string(m_parts + 1) + " exceed " +
                        std::to_string(m_max_header_bytes) + " bytes");
        }
        Headers headers;
        std::size_t line_start = 0;
        while (line_start < end) {
            const auto line_end = m_buffer.find("\r\n", line_start);
            const std::string_view line(m_buffer.data() + line_start, line_end - line_start);
            const auto colon = line.find(':');
            if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
                return fail("malformed header line in part " + std::to_string(m_parts + 1) + ": '" +
                            std::string(line.substr(0, 80)) + "'");
            }
            headers[lower(line.substr(0, colon))] = std::string(trim(line.substr(colon + 1)));
            line_start = line_end + 2;
        }
        m_buffer.erase(0, body_start);
        ++m_parts;
        m_state = State::Body;
        progressed = true;
        if (auto st = m_callbacks.begin(headers); !st) {
            return fail(st.error().message);
        }
        return ok_status();
    }
    case State::Body: {
        const auto at = m_buffer.find(m_delimiter);
        if (at == std::string::npos) {
            const std::size_t keep = m_delimiter.size() - 1;
            if (m_buffer.size() > keep) {
                const std::size_t n = m_buffer.size() - keep;
                if (auto st = m_callbacks.data(std::string_view(m_buffer.data(), n)); !st) {
                    return fail(st.error().message);
                }
                m_buffer.erase(0, n);
            }
            return ok_status();
        }
        if (at > 0) {
            if (auto st = m_callbacks.data(std::string_view(m_buffer.data(), at)); !st) {
                return fail(st.error().message);
            }
        }
        m_buffer.erase(0, at + m_delimiter.size());
        m_state = State::AfterDelimiter;
        progressed = true;
        if (auto st = m_callbacks.end(); !st) {
            return fail(st.error().message);
        }
        return ok_status();
    }
    case State::Epilogue:
    case State::Failed:
        break;
    }
    return ok_status();
}

Status MultipartReader::finish() {
    switch (m_state) {
    case State::Epilogue:
        return ok_status();
    case State::Failed:
        return Error{m_error};
    case State::Preamble:
        return fail("the body has no multipart boundary '" + m_dash_boundary +
                    "' (the boundary parameter of Content-Type)");
    case State::Body:
        return fail("the body ended inside part " + std::to_string(m_parts) +
                    ", before its closing boundary");
    case State::AfterDelimiter:
    case State::Headers:
        break;
    }
    return fail("the body ended after part " + std::to_string(m_parts) +
                " without the closing boundary '" + m_dash_boundary + "--'");
}

// --- StowUpload ---------------------------------------------------------------------------

StowUpload::StowUpload(dicom::ReceiveHandler& receiver, dicom::AssociationInfo association,
                       std::optional<std::string> boundary, std::string key_name)
    : m_receiver(receiver), m_assoc(std::move(association)), m_key_name(std::move(key_name)) {
    m_assoc.id = m_receiver.association_accepted(m_assoc);
    if (boundary) {
        m_reader.emplace(*boundary,
                         MultipartReader::Callbacks{
                             [this](const MultipartReader::Headers& h) { return begin_part(h); },
                             [this](std::string_view d) { return part_data(d); },
                             [this] { return end_part(); }});
    }
    spdlog::info("STOW-RS upload {} from {} (key '{}') started", m_assoc.id, m_assoc.peer_address,
                 m_key_name);
}

StowUpload::~StowUpload() {
    if (!m_closed) {
        drop_part("", 0);
        close("aborted", "the HTTP upload ended before its body was complete");
    }
}

void StowUpload::close(const std::string& outcome, const std::string& detail) {
    m_closed = true;
    m_receiver.association_ended(m_assoc, m_stored, m_refused, outcome, detail);
}

Status StowUpload::begin_part(const MultipartReader::Headers& headers) {
    ++m_part_number;
    m_skip_reason.clear();
    if (const auto it = headers.find("content-type"); it != headers.end()) {
        const auto media = parse_media_type(it->second);
        if (!media || media->type != "application/dicom") {
            m_skip_reason = "part " + std::to_string(m_part_number) + " has Content-Type '" +
                            it->second + "', not application/dicom";
            m_skip_failure = stow_failure::cannot_understand;
            return ok_status();
        }
    }
    if (const dicom::StoreStatus gate = m_receiver.admission(); !gate.success()) {
        m_skip_reason = "part " + std::to_string(m_part_number) + ": " + gate.comment;
        m_skip_failure = gate.status;
        return ok_status();
    }
    m_temp = m_receiver.new_temp_file();
    m_fd = ::open(m_temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
    if (m_fd < 0) {
        const std::string why = std::strerror(errno);
        m_temp.clear();
        return Error{"cannot create a temporary file for part " + std::to_string(m_part_number) +
                     ": " + why};
    }
    return ok_status();
}

Status StowUpload::part_data(std::string_view bytes) {
    if (m_fd < 0) {
        return ok_status(); // a part that is skipped
    }
    while (!bytes.empty()) {
        const ssize_t n = ::write(m_fd, bytes.data(), bytes.size());
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            const std::string why = std::strerror(errno);
            drop_part("", 0);
            return Error{"cannot write part " + std::to_string(m_part_number) +
                         " to the working directory: " + why};
        }
        bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return ok_status();
}

void StowUpload::drop_part(const std::string& reason, std::uint16_t failure) {
    if (m_fd >= 0) {
        ::close(m_fd);
        m_fd = -1;
    }
    if (!m_temp.empty()) {
        std::error_code ec;
        std::filesystem::remove(m_temp, ec);
        m_temp.clear();
    }
    if (!reason.empty()) {
        failed({}, {}, failure, reason);
    }
}

void StowUpload::failed(const std::string& sop_class, const std::string& sop_instance,
                        std::uint16_t failure, const std::string& reason) {
    ++m_refused;
    json item = json::object();
    if (!sop_class.empty()) {
        item["00081150"] = attribute("UI", sop_class);
    }
    if (!sop_instance.empty()) {
        item["00081155"] = attribute("UI", sop_instance);
    }
    item["00081197"] = attribute("US", failure);
    // The reason in words: a private attribute of segnode's block (0009,10xx).
    item["00090010"] = attribute("LO", "SEGNODE");
    item["00091001"] = attribute("UT", reason);
    m_failed.push_back(std::move(item));
    spdlog::warn("STOW-RS upload {} (key '{}'): {}", m_assoc.id, m_key_name, reason);
}

Status StowUpload::end_part() {
    if (m_fd < 0) {
        if (!m_skip_reason.empty()) {
            failed({}, {}, m_skip_failure, m_skip_reason);
            m_skip_reason.clear();
        }
        return ok_status();
    }
    const bool closed = ::close(m_fd) == 0;
    m_fd = -1;
    const std::filesystem::path temp = std::exchange(m_temp, {});
    const std::string part = "part " + std::to_string(m_part_number);
    if (!closed) {
        std::error_code ec;
        std::filesystem::remove(temp, ec);
        failed({}, {}, stow_failure::out_of_resources, part + ": cannot write it to disk");
        return ok_status();
    }
    auto parsed = dicom::read_received_file(temp);
    std::string reason;
    std::uint16_t failure = stow_failure::cannot_understand;
    if (!parsed) {
        reason = part + " is not a DICOM Part 10 file: " + parsed.error().message;
    } else if (auto whole = dicom::check_whole_file(temp); !whole) {
        reason = part + " (" + parsed->sop_instance_uid + "): " + whole.error().message;
    } else if (!dicom::is_supported_storage_sop_class(parsed->sop_class_uid)) {
        const std::string name = dicom::uid_name(parsed->sop_class_uid);
        reason = part + ": SOP class " + parsed->sop_class_uid +
                 (name.empty() ? "" : " (" + name + ")") + " is not supported";
        failure = stow_failure::sop_class_not_supported;
    }
    if (!reason.empty()) {
        const std::string sop_class = parsed ? parsed->sop_class_uid : std::string();
        const std::string sop_instance = parsed ? parsed->sop_instance_uid : std::string();
        m_receiver.refused(m_assoc, sop_instance, failure, reason, temp);
        failed(sop_class, sop_instance, failure, reason);
        return ok_status();
    }
    const dicom::StoreStatus st = m_receiver.store(m_assoc, *parsed);
    if (!st.success()) {
        failed(parsed->sop_class_uid, parsed->sop_instance_uid, st.status,
               part + " (" + parsed->sop_instance_uid + "): " + st.comment);
        return ok_status();
    }
    ++m_stored;
    m_referenced.push_back({{"00081150", attribute("UI", parsed->sop_class_uid)},
                            {"00081155", attribute("UI", parsed->sop_instance_uid)}});
    return ok_status();
}

std::optional<HttpResponse> StowUpload::feed(std::string_view bytes) {
    if (m_reader) {
        if (auto st = m_reader->feed(bytes); !st) {
            return abort(400, "malformed multipart body: " + st.error().message);
        }
        return std::nullopt;
    }
    if (!m_single_started) {
        m_single_started = true;
        if (auto st = begin_part({}); !st) {
            return abort(507, st.error().message);
        }
    }
    if (auto st = part_data(bytes); !st) {
        return abort(507, st.error().message);
    }
    return std::nullopt;
}

HttpResponse StowUpload::abort(int status, const std::string& detail) {
    drop_part("", 0);
    const std::string stored = m_stored > 0 ? "; " + std::to_string(m_stored) +
                                                  " instance(s) of this upload were "
                                                  "stored before"
                                            : std::string();
    close("aborted", detail);
    return problem(status, detail + stored);
}

HttpResponse StowUpload::finish() {
    if (m_reader) {
        const bool in_part = m_reader->in_part();
        if (auto st = m_reader->finish(); !st) {
            if (in_part) {
                drop_part(st.error().message, stow_failure::cannot_understand);
            } else if (m_reader->parts() == 0) {
                return abort(400, "malformed multipart body: " + st.error().message);
            } else {
                // Every part is complete; only the closing "--" is missing: nothing is lost.
                spdlog::info("STOW-RS upload {}: {}", m_assoc.id, st.error().message);
            }
        }
    } else {
        if (!m_single_started) {
            m_single_started = true;
            if (auto st = begin_part({}); !st) {
                return abort(507, st.error().message);
            }
        }
        (void)end_part();
    }
    if (m_stored == 0 && m_refused == 0) {
        return abort(400, "the multipart body has no parts");
    }
    close("released", {});
    json body = json::object();
    if (!m_referenced.empty()) {
        body["00081199"] = {{"vr", "SQ"}, {"Value", m_referenced}};
    }
    if (!m_failed.empty()) {
        body["00081198"] = {{"vr", "SQ"}, {"Value", m_failed}};
    }
    HttpResponse r;
    r.status = m_refused == 0 ? 200 : (m_stored > 0 ? 202 : 409);
    r.content_type = "application/dicom+json";
    r.body = body.dump(2) + "\n";
    spdlog::info("STOW-RS upload {} (key '{}'): {} stored, {} failed", m_assoc.id, m_key_name,
                 m_stored, m_refused);
    return r;
}

} // namespace segnode::api
