#pragma once
// STOW-RS (DICOM PS3.18 10.5): POST /api/v1/studies with a `multipart/related;
// type="application/dicom"` body (or one `application/dicom` body). The body is parsed as it
// arrives: each part is written to a temporary file in the working directory and, once it is
// complete, stored by the pipeline Receiver exactly as a C-STORE is (checks, fsync, index,
// quarantine, disk guard). Memory stays flat whatever the size of the upload.
#include "segnode/api/http_types.hpp"
#include "segnode/core/result.hpp"
#include "segnode/dicom/receive_handler.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace segnode::api {

/// A Content-Type value: the media type in lower case and its parameters (names in lower
/// case, quoted values unquoted).
struct MediaType {
    std::string type;
    std::map<std::string, std::string> params;
};

/// Parses "type/subtype; name=value; name=\"quoted value\""; std::nullopt when malformed.
std::optional<MediaType> parse_media_type(std::string_view text);

/// An incremental multipart (RFC 2046) body parser: bytes go in as they arrive, in pieces of
/// any size; parts come out as begin (the part's headers, names in lower case), data (any
/// number of pieces) and end. A callback's error stops the parse and is returned.
class MultipartReader {
public:
    using Headers = std::map<std::string, std::string>;
    struct Callbacks {
        std::function<Status(const Headers&)> begin;
        std::function<Status(std::string_view)> data;
        std::function<Status()> end;
    };

    MultipartReader(std::string boundary, Callbacks callbacks,
                    std::size_t max_header_bytes = 16384);

    /// Consumes bytes; an error names what is malformed (and stops the reader).
    Status feed(std::string_view bytes);
    /// The body has ended: an error if no closing boundary was seen.
    Status finish();
    /// True between a part's begin and its end.
    [[nodiscard]] bool in_part() const { return m_state == State::Body; }
    /// Parts begun so far.
    [[nodiscard]] std::size_t parts() const { return m_parts; }

private:
    enum class State { Preamble, AfterDelimiter, Headers, Body, Epilogue, Failed };
    Status step(bool& progressed);
    Status fail(std::string message);

    std::string m_dash_boundary; ///< "--" + boundary
    std::string m_delimiter;     ///< "\r\n--" + boundary
    Callbacks m_callbacks;
    std::size_t m_max_header_bytes;
    State m_state = State::Preamble;
    std::string m_buffer;
    std::size_t m_parts = 0;
    std::string m_error;
};

/// One STOW-RS request in progress. Not thread-safe (one per connection).
class StowUpload {
public:
    /// `boundary` set: a multipart/related body; unset: the body is one application/dicom
    /// instance. `association` describes the upload for the Receiver (its id is assigned here).
    StowUpload(dicom::ReceiveHandler& receiver, dicom::AssociationInfo association,
               std::optional<std::string> boundary, std::string key_name);
    /// An upload that did not finish (client gone, limit): its part in progress is removed and
    /// the upload recorded as aborted.
    ~StowUpload();
    StowUpload(const StowUpload&) = delete;
    StowUpload& operator=(const StowUpload&) = delete;

    /// The association id given by the Receiver (0 if it could not be recorded).
    [[nodiscard]] std::int64_t association_id() const { return m_assoc.id; }

    /// The next piece of the body. A response means the body cannot be read further (malformed
    /// multipart, 400); the upload is then over.
    std::optional<HttpResponse> feed(std::string_view bytes);
    /// The body is complete: the STOW-RS response (application/dicom+json).
    HttpResponse finish();
    /// The server stopped reading the body (e.g. 413 over the limit): records the end and
    /// returns the problem response, which says how many instances were stored before.
    HttpResponse abort(int status, const std::string& detail);

private:
    Status begin_part(const MultipartReader::Headers& headers);
    Status part_data(std::string_view bytes);
    Status end_part();
    void drop_part(const std::string& reason, std::uint16_t failure);
    void failed(const std::string& sop_class, const std::string& sop_instance,
                std::uint16_t failure, const std::string& reason);
    void close(const std::string& outcome, const std::string& detail);

    dicom::ReceiveHandler& m_receiver;
    dicom::AssociationInfo m_assoc;
    std::string m_key_name;
    std::optional<MultipartReader> m_reader;
    bool m_single_started = false;
    bool m_closed = false;
    std::size_t m_part_number = 0;
    int m_fd = -1;
    std::filesystem::path m_temp;
    std::string m_skip_reason; ///< the current part is not stored, for this reason
    std::uint16_t m_skip_failure = 0;
    std::int64_t m_stored = 0;
    std::int64_t m_refused = 0;
    nlohmann::json m_referenced = nlohmann::json::array();
    nlohmann::json m_failed = nlohmann::json::array();
};

/// STOW-RS failure reasons (PS3.4 Annex B / PS3.18 Table 10.5.3-1) used in FailureReason.
namespace stow_failure {
constexpr std::uint16_t processing_failure = 0x0110;
constexpr std::uint16_t sop_class_not_supported = 0x0122;
constexpr std::uint16_t out_of_resources = 0xA700;
constexpr std::uint16_t cannot_understand = 0xC000;
} // namespace stow_failure

} // namespace segnode::api
