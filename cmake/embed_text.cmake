# Writes OUTPUT, a C++ source defining `std::string_view FUNCTION()` in
# namespace tcpfork that returns the bytes of INPUT, so that a page edited
# as a file ships inside the binary (nothing to install or find at run time).
# Run as `cmake -DINPUT=... -DOUTPUT=... -DFUNCTION=... -DHEADER=... -P embed_text.cmake`.
file(READ "${INPUT}" text)
set(delimiter "tcpfork_embed")
string(FIND "${text}" ")${delimiter}\"" clash)
if(NOT clash EQUAL -1)
  message(FATAL_ERROR "${INPUT} contains the raw string delimiter )${delimiter}\"")
endif()
file(WRITE "${OUTPUT}.tmp" "// Generated from ${INPUT} at build time; edit that file.
#include \"${HEADER}\"

namespace tcpfork {

std::string_view ${FUNCTION}() {
  static constexpr char kText[] = R\"${delimiter}(${text})${delimiter}\";
  return {kText, sizeof(kText) - 1};
}

}  // namespace tcpfork
")
# Only a changed page touches the source, so an unchanged one rebuilds nothing.
file(COPY_FILE "${OUTPUT}.tmp" "${OUTPUT}" ONLY_IF_DIFFERENT)
file(REMOVE "${OUTPUT}.tmp")
