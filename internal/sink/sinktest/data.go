package sinktest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
)

// Stream returns n deterministic pseudo-random bytes derived from seed,
// generated as they are read: a 100 MB body costs no 100 MB of memory.
func Stream(seed uint64, n int64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	binary.LittleEndian.PutUint64(s[8:], uint64(n))
	return io.LimitReader(rand.NewChaCha8(s), n)
}

// Bytes returns Stream(seed, n) in memory, for small bodies.
func Bytes(seed uint64, n int) []byte {
	b, _ := io.ReadAll(Stream(seed, int64(n)))
	return b
}

// Digest returns the hex SHA-256 of Stream(seed, n).
func Digest(seed uint64, n int64) string {
	h := sha256.New()
	_, _ = io.Copy(h, Stream(seed, n))
	return hex.EncodeToString(h.Sum(nil))
}

// ErrSource is what FailAfter's reader returns.
var ErrSource = errors.New("sinktest: source failed")

// FailAfter returns a reader that yields the first n bytes of r and then
// fails with ErrSource, like an upstream connection reset mid-body
// (reliability F7).
func FailAfter(r io.Reader, n int64) io.Reader {
	return &failingReader{r: io.LimitReader(r, n)}
}

type failingReader struct{ r io.Reader }

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		if n > 0 {
			return n, nil
		}
		return 0, ErrSource
	}
	return n, err
}

// OnlyReader hides every method of r but Read (no WriterTo, no Seeker), so a
// sink sees a plain stream like an HTTP body.
func OnlyReader(r io.Reader) io.Reader { return struct{ io.Reader }{r} }
