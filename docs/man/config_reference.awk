# The configuration reference of docs/configuration.md as scdoc, for
# tcpfork.yaml(5): "## Value forms" as VALUE FORMS, and "## Keys" as KEYS,
# each "### `key`" block (its description, then its "- field: value" list)
# an entry. The man page is made from the handbook at build time, so it says
# what the handbook says, which the docs tests hold to the parser.
#
# Inline Markdown becomes scdoc: `code` and **strong** bold, [text](target)
# its text, once scdoc's own characters (\ * _) are escaped. Markdown it
# does not know in those sections (a fence, a table, a quote, another
# heading) stops the build, naming the line, rather than print it wrong.
#
#   awk -f config_reference.awk docs/configuration.md > reference.scd

function fail(why) {
  printf "%s:%d: %s: config_reference.awk cannot put that in the man page\n", FILENAME, FNR, why > "/dev/stderr"
  failed = 1
  exit 1
}

function inline(s,    text) {
  gsub(/\\/, "\\\\", s)
  gsub(/\*/, "\\*", s)
  gsub(/_/, "\\_", s)
  gsub(/\\\*\\\*/, "*", s)
  while (match(s, /\[[^]]*\]\([^)]*\)/)) {
    text = substr(s, RSTART + 1, RLENGTH - 1)
    sub(/\]\(.*$/, "", text)
    s = substr(s, 1, RSTART - 1) text substr(s, RSTART + RLENGTH)
  }
  gsub(/`/, "*", s)
  return s
}

# Markdown wraps a paragraph or list item over lines: one line each here.
function join(into, line) {
  sub(/^[ \t]+/, "", line)
  return into == "" ? line : into " " line
}

# Ends the paragraph or item being joined.
function endPart() {
  if (current == "") return
  if (inFields) fields[++nFields] = current; else paragraphs[++nParagraphs] = current
  current = ""
}

# The paragraphs and items gathered so far, written out: a key's entry, or
# a section's text and list.
function flush(    i) {
  endPart()
  if (key != "") {
    print "*" inline(key) "*"
    for (i = 1; i <= nParagraphs; i++) print (i > 1 ? "\n" : "") "\t" inline(paragraphs[i])
    # The fields as lines of one paragraph: scdoc breaks a line ending in ++.
    for (i = 1; i <= nFields; i++) print (i == 1 ? "\n\t" : "") inline(fields[i]) (i < nFields ? "++" : "")
    print ""
  } else {
    for (i = 1; i <= nParagraphs; i++) print inline(paragraphs[i]) "\n"
    for (i = 1; i <= nFields; i++) print "- " inline(fields[i])
    if (nFields) print ""
  }
  key = ""; nParagraphs = 0; nFields = 0; inFields = 0
}

/^## / {
  flush()
  section = ""
  if ($0 == "## Value forms") { section = "forms"; print "# VALUE FORMS\n" }
  if ($0 == "## Keys") { section = "keys"; print "# KEYS\n" }
  next
}

section == "" { next }

/^(```|\||>|#)/ && !/^### `[a-z_.]+`$/ { fail("unexpected Markdown: " $0) }

/^### / {
  if (section != "keys") fail("a key outside ## Keys")
  flush()
  key = substr($0, 6, length($0) - 6)
  next
}

$0 == "" { endPart(); next }

/^- / {
  if (key != "" && $0 !~ /^- [a-z ]+: /) fail("a key's list holds \"- field: value\" lines: " $0)
  endPart()
  inFields = 1
  current = substr($0, 3)
  next
}

{
  if (inFields && current == "") fail("text after a list: " $0)
  current = join(current, $0)
}

END {
  if (failed) exit 1
  flush()
}
