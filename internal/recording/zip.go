package recording

import (
	"archive/zip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// Member is one recording inside a ZIP bundle.
type Member struct {
	Name   string // plain base name, as in the archive
	Size   int64  // inflated bytes, as counted while reading
	SHA256 string // hex SHA-256 of the inflated bytes
}

// nestedExt are names of archives, refused inside a bundle.
var nestedExt = []string{".zip", ".gz", ".tgz", ".tar", ".bz2", ".xz", ".zst", ".7z", ".rar", ".jar"}

// CheckZip validates a spooled ZIP bundle of recordings without extracting
// it: the central directory parses, it has between 1 and maxEntries entries,
// none is a directory, a symlink, another non-regular file or a nested
// archive, every name is a plain base name (no path, no backslash, no drive,
// no control character, valid UTF-8, no duplicate), the inflated total is at
// most maxBytes (counted on the decompressed stream: the sizes in the
// headers are not trusted), and every entry streams through NewReader as a
// valid WAV or a format p allows (FormatZIP excepted: no nesting). It
// returns the members in archive order with their inflated size and SHA-256.
//
// A bundle that fails any check gives an error matching ErrNotRecording; a
// read error of ra itself (the spool file) is returned wrapped instead, as it
// says nothing about the bundle. maxEntries and maxBytes must be positive.
func CheckZip(ra io.ReaderAt, size int64, p Policy, maxEntries int, maxBytes int64) ([]Member, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if maxEntries <= 0 || maxBytes <= 0 {
		return nil, fmt.Errorf("recording: check zip: maxEntries %d and maxBytes %d must be positive", maxEntries, maxBytes)
	}
	var head [headMax]byte
	hn, _ := ra.ReadAt(head[:min(int64(headMax), max(size, 0))], 0)
	era := &errReaderAt{ra: ra}
	fail := func(format string, a ...any) error {
		if era.err != nil {
			return fmt.Errorf("recording: check zip: %w", era.err)
		}
		return &Error{Reason: fmt.Sprintf(format, a...), Head: Mask(head[:hn])}
	}
	zr, err := zip.NewReader(era, size)
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		// archive/zip reports a broken central directory and a failing ra
		// alike; a bundle that does not parse is not a recording.
		return nil, fail("ZIP does not parse: %v", err)
	}
	switch {
	case len(zr.File) == 0:
		return nil, fail("ZIP holds no entry")
	case len(zr.File) > maxEntries:
		return nil, fail("ZIP holds %d entries, more than %d", len(zr.File), maxEntries)
	}
	seen := make(map[string]bool, len(zr.File))
	for _, f := range zr.File {
		name := Mask([]byte(f.Name))
		if reason := checkMemberName(f.Name); reason != "" {
			return nil, fail("entry %q: %s", name, reason)
		}
		if seen[f.Name] {
			return nil, fail("entry %q appears twice", name)
		}
		seen[f.Name] = true
		if m := f.Mode(); !m.IsRegular() {
			return nil, fail("entry %q is not a regular file (%s)", name, m.Type())
		}
	}
	mp := p.without(FormatZIP)
	members := make([]Member, 0, len(zr.File))
	left := maxBytes
	for _, f := range zr.File {
		name := Mask([]byte(f.Name))
		m, err := checkMember(f, mp, &left, maxBytes)
		var re *Error
		switch {
		case errors.Is(err, ErrIsZip):
			return nil, fail("entry %q is a nested ZIP", name)
		case errors.As(err, &re) && era.err == nil:
			return nil, fmt.Errorf("recording: zip entry %q: %w", name, err)
		case err != nil:
			return nil, fail("entry %q: %v", name, err)
		}
		members = append(members, m)
	}
	return members, nil
}

// checkMemberName returns why name is not a plain base name, "" if it is.
func checkMemberName(name string) string {
	switch {
	case name == "":
		return "empty name"
	case len(name) > 255:
		return "name longer than 255 bytes"
	case !utf8.ValidString(name):
		return "name is not valid UTF-8"
	case strings.ContainsAny(name, `/\`):
		return "name is a path, not a base name"
	case name == "." || name == "..":
		return "name is a path, not a base name"
	case strings.Contains(name, ":"):
		return "name has a drive or stream colon"
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "name has a control character"
		}
	}
	lower := strings.ToLower(name)
	for _, ext := range nestedExt {
		if strings.HasSuffix(lower, ext) {
			return "nested archive"
		}
	}
	return ""
}

// checkMember streams one entry through NewReader, hashing it and charging
// its inflated bytes to *left.
func checkMember(f *zip.File, p Policy, left *int64, maxBytes int64) (Member, error) {
	rc, err := f.Open()
	if err != nil {
		return Member{}, err
	}
	defer rc.Close()
	lr := &limitReader{r: rc, left: left, max: maxBytes}
	h := sha256.New()
	n, err := io.Copy(h, NewReader(lr, -1, p))
	if err != nil {
		return Member{}, err
	}
	return Member{Name: f.Name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// limitReader fails once more than *left bytes were read, across every
// entry of a bundle.
type limitReader struct {
	r    io.Reader
	left *int64
	max  int64
}

func (l *limitReader) Read(b []byte) (int, error) {
	if int64(len(b)) > *l.left+1 {
		b = b[:*l.left+1]
	}
	n, err := l.r.Read(b)
	*l.left -= int64(n)
	if *l.left < 0 {
		return 0, fmt.Errorf("ZIP inflates to more than %d bytes", l.max)
	}
	return n, err
}

// errReaderAt remembers the first read error of ra other than io.EOF, to
// tell a failing spool file from a broken bundle.
type errReaderAt struct {
	ra  io.ReaderAt
	err error
}

func (e *errReaderAt) ReadAt(b []byte, off int64) (int, error) {
	n, err := e.ra.ReadAt(b, off)
	if err != nil && err != io.EOF && e.err == nil {
		e.err = err
	}
	return n, err
}
