package config

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/pelletier/go-toml/v2"
)

// decode decodes the TOML document data into cfg, which holds the defaults.
// Keys and tables the Config does not know are returned as problems (the rest
// of the document is still decoded, so validation can report more). Values of
// the wrong type (all of them, see checkTypes) and syntax errors are returned
// as fatal, because the decoder stops at them.
func decode(data []byte, cfg *Config) (problems []error, fatal error) {
	if errs := checkTypes(data); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	err := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(cfg)
	if err == nil {
		return nil, nil
	}
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		for i := range strict.Errors {
			problems = append(problems, unknownKeyError(&strict.Errors[i]))
		}
		return problems, nil
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		return nil, decodeError(de)
	}
	return nil, fmt.Errorf("toml: %w", err)
}

// unknownKeyError turns go-toml's strict-mode report of one unknown key or
// table into "path: unknown key (line N)", with a suggestion when a known name
// is close.
func unknownKeyError(e *toml.DecodeError) error {
	key := e.Key()
	line, _ := e.Position()
	path := strings.Join(key, ".")
	name := key[len(key)-1]
	parent := key[:len(key)-1]
	isTable := strings.Contains(e.Error(), "missing table")

	what := "unknown key"
	switch {
	case len(key) == 2 && key[0] == "jobs" && isTable:
		return &FieldError{Field: path, Msg: fmt.Sprintf("unknown job (line %d); jobs are %s", line,
			strings.Join(JobNames(), ", "))}
	case len(key) == 1 && isTable:
		what = "unknown section"
	case isTable:
		what = "unknown table"
	}
	msg := fmt.Sprintf("%s (line %d)", what, line)
	if s := closest(name, keysAt(parent)); s != "" {
		msg += fmt.Sprintf("; did you mean %q?", s)
	}
	return &FieldError{Field: path, Msg: msg}
}

// decodeError rewrites a go-toml decode error in the archiver's terms: a value
// of the wrong type or an unparsable value names the key; a syntax error names
// the line and column.
func decodeError(e *toml.DecodeError) error {
	key := e.Key()
	line, col := e.Position()
	msg := strings.TrimPrefix(e.Error(), "toml: ")
	t, ok := typeAt(key)
	if !ok {
		return fmt.Errorf("toml: line %d, column %d: %s", line, col, msg)
	}
	path := strings.Join(key, ".")
	// go-toml says "cannot decode TOML string into struct field config.CEC.Concurrency of type int".
	if rest, found := strings.CutPrefix(msg, "cannot decode TOML "); found {
		if got, _, found := strings.Cut(rest, " into "); found {
			msg = fmt.Sprintf("want %s, got %s", describeType(t), withArticle(got))
		}
	}
	return &FieldError{Field: path, Msg: fmt.Sprintf("%s (line %d)", msg, line)}
}

func withArticle(noun string) string {
	if noun != "" && strings.ContainsRune("aeiou", rune(noun[0])) {
		return "an " + noun
	}
	return "a " + noun
}

// closest returns the candidate nearest to name by edit distance, if it is
// near enough to be a likely typo, or "".
func closest(name string, candidates []string) string {
	best, bestDist := "", 3 // at most two edits
	for _, c := range candidates {
		if d := editDistance(name, c); d < bestDist && d < len(c) {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
