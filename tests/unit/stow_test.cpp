// The STOW-RS body parsers: Content-Type parameters and the incremental multipart reader fed
// in pieces of every size (the upload path itself is tested end to end in
// tests/integration/test_stow.py with requests and curl).
#include "segnode/api/stow.hpp"

#include <gtest/gtest.h>
#include <string>
#include <vector>

using namespace segnode;
using api::MultipartReader;

namespace {

struct Collected {
    std::vector<MultipartReader::Headers> headers;
    std::vector<std::string> bodies;
    int ended = 0;
};

MultipartReader reader_for(const std::string& boundary, Collected& c) {
    return MultipartReader(boundary,
                           MultipartReader::Callbacks{[&c](const MultipartReader::Headers& h) {
                                                          c.headers.push_back(h);
                                                          c.bodies.emplace_back();
                                                          return ok_status();
                                                      },
                                                      [&c](std::string_view d) {
                                                          c.bodies.back().append(d);
                                                          return ok_status();
                                                      },
                                                      [&c] {
                                                          ++c.ended;
                                                          return ok_status();
                                                      }});
}

/// Feeds `body` in pieces of `step` bytes; the error of feed or finish, or "" when both pass.
std::string parse(const std::string& boundary, const std::string& body, std::size_t step,
                  Collected& c) {
    MultipartReader reader = reader_for(boundary, c);
    for (std::size_t i = 0; i < body.size(); i += step) {
        if (auto st = reader.feed(std::string_view(body).substr(i, step)); !st) {
            return st.error().message;
        }
    }
    auto st = reader.finish();
    return st ? std::string() : st.error().message;
}

// A body part that contains near-boundaries: "--b" at a line start without the full
// boundary, CR LF pairs and the boundary text without its leading CRLF.
const std::string k_tricky =
    std::string("\r\n--bX\r\n--b\r--b\n", 16) + std::string(1, '\0') + "xx--bound";

std::string two_parts() {
    return "preamble text\r\n"
           "--bound\r\n"
           "Content-Type: application/dicom\r\n"
           "X-Extra:  spaced value \r\n"
           "\r\n" +
           k_tricky +
           "\r\n--bound  \r\n"
           "\r\n"
           "second\r\n"
           "\r\n--bound--\r\n"
           "epilogue --bound\r\n";
}

} // namespace

TEST(MediaType, ParsesTypeAndParameters) {
    auto m = api::parse_media_type(
        R"(Multipart/Related; type="application/dicom"; boundary=abc-123 ;start="<a;b>")");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->type, "multipart/related");
    EXPECT_EQ(m->params.at("type"), "application/dicom");
    EXPECT_EQ(m->params.at("boundary"), "abc-123");
    EXPECT_EQ(m->params.at("start"), "<a;b>");
    m = api::parse_media_type(R"(multipart/related; BOUNDARY="a \"q\" b")");
    ASSERT_TRUE(m);
    EXPECT_EQ(m->params.at("boundary"), "a \"q\" b");
    m = api::parse_media_type("application/dicom");
    ASSERT_TRUE(m);
    EXPECT_TRUE(m->params.empty());
}

TEST(MediaType, RefusesMalformedValues) {
    for (const char* bad : {"", "dicom", "/x", "a/", "a/b; boundary", "a/b; x=\"open",
                            "a/b; x=\"q\"junk", "a b/c", "a/b; x=a b"}) {
        EXPECT_FALSE(api::parse_media_type(bad)) << bad;
    }
}

TEST(MultipartReader, PartsComeOutWholeWhateverThePieceSize) {
    const std::string body = two_parts();
    for (std::size_t step = 1; step <= body.size(); ++step) {
        Collected c;
        ASSERT_EQ(parse("bound", body, step, c), "") << "step " << step;
        ASSERT_EQ(c.bodies.size(), 2U) << "step " << step;
        EXPECT_EQ(c.ended, 2);
        EXPECT_EQ(c.bodies[0], k_tricky) << "step " << step;
        EXPECT_EQ(c.bodies[1], "second\r\n");
        EXPECT_EQ(c.headers[0].at("content-type"), "application/dicom");
        EXPECT_EQ(c.headers[0].at("x-extra"), "spaced value");
        EXPECT_TRUE(c.headers[1].empty());
    }
}

TEST(MultipartReader, BoundaryAtTheVeryStartAndAnEmptyPart) {
    Collected c;
    ASSERT_EQ(parse("b", "--b\r\nA: 1\r\n\r\n\r\n--b--", 3, c), "");
    ASSERT_EQ(c.bodies.size(), 1U);
    EXPECT_EQ(c.bodies[0], "");
}

TEST(MultipartReader, MissingBoundaryIsAnErrorAtTheEnd) {
    Collected c;
    const std::string error = parse("bound", "just some bytes, no delimiter --boun", 5, c);
    EXPECT_NE(error.find("no multipart boundary '--bound'"), std::string::npos) << error;
    EXPECT_TRUE(c.bodies.empty());
    // A boundary that is not at a line start does not count.
    Collected d;
    EXPECT_NE(parse("bound", "x--bound\r\n\r\nbody", 4, d), "");
    EXPECT_TRUE(d.bodies.empty());
}

TEST(MultipartReader, TruncatedBodiesAreReportedWithThePart) {
    Collected c;
    MultipartReader reader = reader_for("b", c);
    ASSERT_TRUE(reader.feed("--b\r\n\r\nfirst\r\n--b\r\n\r\nsecond, cut off"));
    EXPECT_TRUE(reader.in_part());
    auto st = reader.finish();
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().message, "the body ended inside part 2, before its closing boundary");
    EXPECT_EQ(c.ended, 1);

    Collected d;
    EXPECT_NE(parse("b", "--b\r\n\r\nfirst\r\n--b", 100, d).find("without the closing boundary"),
              std::string::npos);
}

TEST(MultipartReader, MalformedDelimiterLinesAndHeaders) {
    Collected c;
    EXPECT_NE(parse("b", "--b junk\r\n\r\nx\r\n--b--", 100, c)
                  .find("malformed multipart "
                        "boundary line"),
              std::string::npos);
    Collected d;
    EXPECT_NE(parse("b", "--b\r\nno colon here\r\n\r\nx\r\n--b--", 100, d)
                  .find("malformed header line in part 1"),
              std::string::npos);
    Collected e;
    MultipartReader reader("b",
                           {[](const MultipartReader::Headers&) { return ok_status(); },
                            [](std::string_view) { return ok_status(); },
                            [] { return ok_status(); }},
                           64);
    auto st = reader.feed("--b\r\nX-Long: " + std::string(100, 'a'));
    ASSERT_FALSE(st);
    EXPECT_NE(st.error().message.find("headers of part 1 exceed 64 bytes"), std::string::npos);
}

TEST(MultipartReader, CallbackErrorsStopTheParse) {
    int data_calls = 0;
    MultipartReader reader("b", {[](const MultipartReader::Headers&) { return ok_status(); },
                                 [&data_calls](std::string_view) -> Status {
                                     ++data_calls;
                                     return Error{"disk full"};
                                 },
                                 [] { return ok_status(); }});
    auto st = reader.feed("--b\r\n\r\n" + std::string(1000, 'x'));
    ASSERT_FALSE(st);
    EXPECT_EQ(st.error().message, "disk full");
    EXPECT_FALSE(reader.feed("more"));
    EXPECT_EQ(data_calls, 1);
}
