package jobs

import (
	"bytes"
	"encoding/json"
	"io"
	"slices"
	"strconv"

	"github.com/cec-archiver/cec-archiver/internal/cdr"
)

// rowEncoder writes the lines of a rows file: byte for byte what a
// json.Encoder with HTML escaping off writes for a rowJSON, whose fields
// map's keys it sorts. The rows object's key and digest depend on those
// bytes, so they must not change; building a map per row and encoding it by
// reflection was most of the package's parse on a day of 20,000 calls.
type rowEncoder struct {
	w     io.Writer
	buf   []byte
	order map[rowShape][]int // a row shape's field indices in key order
	names map[rowShape][]string

	slow    bytes.Buffer // strings that need escaping go through encoding/json
	slowEnc *json.Encoder
}

// rowShape is what a row's keys depend on.
type rowShape struct {
	kind cdr.Kind
	n    int
}

func newRowEncoder(w io.Writer) *rowEncoder {
	e := &rowEncoder{w: w, order: map[rowShape][]int{}, names: map[rowShape][]string{}}
	e.slowEnc = json.NewEncoder(&e.slow)
	e.slowEnc.SetEscapeHTML(false)
	return e
}

// keys returns the names of a row's n fields (cols, then col_N) and their
// indices in sorted order. As in a map, a name given twice keeps its last
// value.
func (e *rowEncoder) keys(kind cdr.Kind, cols []string, n int) ([]string, []int) {
	s := rowShape{kind, n}
	if order, ok := e.order[s]; ok {
		return e.names[s], order
	}
	names := make([]string, n)
	last := map[string]int{}
	for i := range n {
		if i < len(cols) {
			names[i] = cols[i]
		} else {
			names[i] = "col_" + strconv.Itoa(i+1)
		}
		last[names[i]] = i
	}
	order := make([]int, 0, len(last))
	for _, i := range last {
		order = append(order, i)
	}
	slices.SortFunc(order, func(a, b int) int {
		switch {
		case names[a] < names[b]:
			return -1
		case names[a] > names[b]:
			return 1
		}
		return 0
	})
	e.order[s], e.names[s] = order, names
	return names, order
}

// encode writes one row's line.
func (e *rowEncoder) encode(kind cdr.Kind, cols []string, r cdr.Row) error {
	names, order := e.keys(kind, cols, len(r.Fields))
	b := append(e.buf[:0], `{"file":`...)
	b = e.appendString(b, r.File)
	b = append(b, `,"kind":`...)
	b = e.appendString(b, string(kind))
	b = append(b, `,"line":`...)
	b = strconv.AppendInt(b, int64(r.Line), 10)
	b = append(b, `,"fields":{`...)
	for j, i := range order {
		if j > 0 {
			b = append(b, ',')
		}
		b = e.appendString(b, names[i])
		b = append(b, ':')
		b = e.appendString(b, r.Fields[i])
	}
	b = append(b, "}}\n"...)
	e.buf = b
	_, err := e.w.Write(b)
	return err
}

// appendString appends s as encoding/json quotes it: printable ASCII other
// than '"' and '\' as it is; anything else (control characters, non-ASCII,
// invalid UTF-8) through encoding/json itself.
func (e *rowEncoder) appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			e.slow.Reset()
			if err := e.slowEnc.Encode(s); err != nil {
				panic(err) // a string always encodes
			}
			return append(b, bytes.TrimSuffix(e.slow.Bytes(), []byte{'\n'})...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// appendContent appends a row's share of a package's content digest: the
// kind, then each field as "\x00<len>:<value>", then a newline.
func appendContent(b []byte, kind cdr.Kind, fields []string) []byte {
	b = append(b, kind...)
	for _, v := range fields {
		b = append(b, 0)
		b = strconv.AppendInt(b, int64(len(v)), 10)
		b = append(b, ':')
		b = append(b, v...)
	}
	return append(b, '\n')
}
