# Generates a C++ file holding one text file as a string (run at build time).
# Inputs: INPUT (file), SYMBOL (function name in namespace segnode::api), OUTPUT.
file(READ "${INPUT}" text)
string(FIND "${text}" ")segnode_embed\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw-string delimiter")
endif()
file(WRITE "${OUTPUT}.tmp"
"// Generated from ${INPUT} by src/api/embed_file.cmake. Do not edit.
#include <string_view>
namespace segnode::api {
std::string_view ${SYMBOL}() {
    static constexpr std::string_view text = R\"segnode_embed(${text})segnode_embed\";
    return text;
}
} // namespace segnode::api
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
