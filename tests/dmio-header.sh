# SPDX-License-Identifier: LGPL-2.1-or-later
# shellcheck shell=sh
# The declarations of include/dmio.h as the shell tests see them, parsed from the header itself so
# that no test keeps a list of names by hand: sourced by test-man-libdmio.sh (the man page
# documents every name) and test-libdmio-symbols.sh (libdmio.so exports every function and
# nothing else).

# strip_comments: C comments out, line structure kept.
strip_comments ()
{
	awk '
	{
		line = $0; out = ""
		while (line != "") {
			if (incomment) {
				i = index(line, "*/")
				if (i == 0) { line = ""; break }
				line = substr(line, i + 2); incomment = 0; out = out " "
			} else {
				i = index(line, "/*"); j = index(line, "//")
				if (j > 0 && (i == 0 || j < i)) { out = out substr(line, 1, j - 1); break }
				if (i == 0) { out = out line; break }
				out = out substr(line, 1, i - 1); line = substr(line, i + 2); incomment = 1
			}
		}
		print out
	}' "$@"
}

# parse_header HEADER: the declarations of the header, one per line: KIND<TAB>NAME<TAB>DECLARATION,
# where KIND is function, typedef, struct, union, enum, opaque (a declared but undefined
# struct/union/enum), variable, macro or constant (an enumerator, or a DMIO_* token used in code).
# The include guard and C++-only blocks are left out.
parse_header ()
{
	strip_comments "$1" | awk -v TAB="$(printf '\t')" '
	function emit(kind, name, decl) {
		if (name == "" || (name in seen))
			return
		seen[name] = 1
		print kind TAB name TAB decl
	}
	function tokens(text,    t) {
		while (match(text, /DMIO_[A-Z0-9_]+/)) {
			t = substr(text, RSTART, RLENGTH)
			if (t != guard)
				emit("constant", t, "")
			text = substr(text, RSTART + RLENGTH)
		}
	}
	function last_ident(text) {
		if (match(text, /[A-Za-z_][A-Za-z0-9_]*[ ]*(\[[^]]*\])*[ ]*;$/)) {
			text = substr(text, RSTART, RLENGTH)
			sub(/[ ]*(\[[^]]*\])*[ ]*;$/, "", text)
			return text
		}
		return ""
	}
	function declaration(d,    name, kind, body, n, items, i, item) {
		gsub(/[ \t]+/, " ", d); sub(/^ /, "", d); sub(/ $/, "", d)
		if (d == ";" || d == "")
			return
		if (d ~ /^typedef /) {
			if (match(d, /\([ ]*\*[ ]*[A-Za-z_][A-Za-z0-9_]*[ ]*\)/)) {
				name = substr(d, RSTART, RLENGTH); gsub(/[ ()*]/, "", name)
			} else {
				name = last_ident(d)
			}
			emit("typedef", name, d)
		} else if (d ~ /^(struct|union|enum) [A-Za-z_][A-Za-z0-9_]* ?;$/) {
			name = d; sub(/^(struct|union|enum) /, "", name); sub(/ ?;$/, "", name)
			emit("opaque", name, d)
		} else if (d ~ /^(struct|union|enum) [A-Za-z_][A-Za-z0-9_]* ?\{/) {
			kind = d; sub(/ .*/, "", kind)
			name = d; sub(/^(struct|union|enum) /, "", name); sub(/ ?\{.*/, "", name)
			emit(kind, name, d)
		} else if (match(d, /[A-Za-z_][A-Za-z0-9_]* ?\(/)) {
			name = substr(d, RSTART, RLENGTH); sub(/ ?\($/, "", name)
			emit("function", name, d)
		} else {
			emit("variable", last_ident(d), d)
		}
		if (d ~ /^(typedef )?enum[^{]*\{/) {
			body = d; sub(/^[^{]*\{/, "", body); sub(/\}[^}]*$/, "", body)
			n = split(body, items, ",")
			for (i = 1; i <= n; i++) {
				item = items[i]; sub(/^ /, "", item)
				if (match(item, /^[A-Za-z_][A-Za-z0-9_]*/))
					emit("constant", substr(item, 1, RLENGTH), "")
			}
		}
		tokens(d)
	}
	/^[ \t]*#/ {
		directive = $0; sub(/^[ \t]*#[ \t]*/, "", directive)
		split(directive, w, /[ \t(]+/)
		ndirectives++
		if (w[1] == "if" || w[1] == "ifdef" || w[1] == "ifndef") {
			if (ndirectives == 1 && w[1] == "ifndef")
				guard = w[2]
			if (skipping > 0 || (w[1] == "ifdef" && w[2] == "__cplusplus"))
				skipping++
		} else if (w[1] == "endif") {
			if (skipping > 0)
				skipping--
		} else if (w[1] == "define" && skipping == 0 && w[2] != guard) {
			value = directive; sub(/^define[ \t]+[A-Za-z0-9_]+(\([^)]*\))?/, "", value)
			emit("macro", w[2], "")
			tokens(value)
		}
		next
	}
	skipping == 0 { code = code " " $0 }
	END {
		depth = 0; d = ""
		for (i = 1; i <= length(code); i++) {
			c = substr(code, i, 1)
			d = d c
			if (c == "{") depth++
			else if (c == "}") depth--
			else if (c == ";" && depth == 0) { declaration(d); d = "" }
		}
	}'
}
