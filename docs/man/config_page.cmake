# Writes the scdoc source of tcpfork.yaml(5): its own text (TEMPLATE, the
# configured tcpfork.yaml.5.scd) with the line %%CONFIG_REFERENCE%% replaced
# by the handbook's configuration reference (MARKDOWN) as config_reference.awk
# makes it.
#
#   cmake -DAWK=awk -DAWK_SCRIPT=... -DMARKDOWN=docs/configuration.md -DTEMPLATE=... -DOUTPUT=... -P config_page.cmake

execute_process(COMMAND "${AWK}" -f "${AWK_SCRIPT}" "${MARKDOWN}"
  OUTPUT_VARIABLE reference ERROR_VARIABLE error RESULT_VARIABLE failed)
if(failed)
  message(FATAL_ERROR "tcpfork.yaml(5): ${error}")
endif()
file(READ "${TEMPLATE}" page)
string(FIND "${page}" "\n%%CONFIG_REFERENCE%%\n" at)
if(at EQUAL -1)
  message(FATAL_ERROR "tcpfork.yaml(5): ${TEMPLATE} has no line %%CONFIG_REFERENCE%%")
endif()
string(REPLACE "\n%%CONFIG_REFERENCE%%\n" "\n${reference}" page "${page}")
# Through a temporary file, so a failed run leaves no half-written source.
file(WRITE "${OUTPUT}.tmp" "${page}")
file(RENAME "${OUTPUT}.tmp" "${OUTPUT}")
