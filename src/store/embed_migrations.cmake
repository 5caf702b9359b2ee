# Generates a C++ file holding the SQL migrations (run by CMake at configure time).
# Inputs: MIGRATION_DIR, MIGRATIONS (list of file names), OUTPUT.
set(body "")
foreach(file IN LISTS MIGRATIONS)
  if(NOT file MATCHES "^([0-9]+)_(.+)\\.sql$")
    message(FATAL_ERROR "migration file name '${file}' is not NNNN_name.sql")
  endif()
  math(EXPR version "${CMAKE_MATCH_1}")
  set(name "${CMAKE_MATCH_2}")
  file(READ "${MIGRATION_DIR}/${file}" sql)
  string(FIND "${sql}" ")segnode_sql\"" clash)
  if(NOT clash EQUAL -1)
    message(FATAL_ERROR "${file} contains the raw-string delimiter")
  endif()
  string(APPEND body "        {${version}, \"${name}\", R\"segnode_sql(${sql})segnode_sql\"},\n")
endforeach()
file(WRITE "${OUTPUT}.tmp"
"// Generated from db/*.sql by src/store/embed_migrations.cmake. Do not edit.
#include \"segnode/store/migrations.hpp\"
namespace segnode::store {
const std::vector<Migration>& embedded_migrations_generated() {
    static const std::vector<Migration> migrations = {
${body}    };
    return migrations;
}
} // namespace segnode::store
")
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
