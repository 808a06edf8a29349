// Package stream holds the reading helpers the sink implementations share.
package stream

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"

	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// ContextReader fails reads once ctx is done, so a copy loop over a body
// that never blocks still stops on cancellation.
type ContextReader struct {
	Ctx context.Context
	R   io.Reader
}

func (r ContextReader) Read(p []byte) (int, error) {
	if err := r.Ctx.Err(); err != nil {
		return 0, err
	}
	return r.R.Read(p)
}

// SourceError marks an error returned by the caller's body, as opposed to
// one of the store, so that it is reported as such.
type SourceError struct{ Err error }

func (e *SourceError) Error() string { return "read source: " + e.Err.Error() }
func (e *SourceError) Unwrap() error { return e.Err }

// SourceReader wraps the errors of R (other than io.EOF) in *SourceError.
type SourceReader struct{ R io.Reader }

func (r SourceReader) Read(p []byte) (int, error) {
	n, err := r.R.Read(p)
	if err != nil && err != io.EOF {
		err = &SourceError{Err: err}
	}
	return n, err
}

// DeniedError marks an error of the store that refused the credentials or
// the permission: errors.Is(err, sink.ErrAccessDenied) holds, and the store's
// own error stays in the chain with its message unchanged.
type DeniedError struct{ Err error }

func (e *DeniedError) Error() string   { return e.Err.Error() }
func (e *DeniedError) Unwrap() []error { return []error{sink.ErrAccessDenied, e.Err} }

// Classify wraps err in *DeniedError when denied(err) says the store refused
// access. Errors of the caller's body (*SourceError) are the source's, never
// the store's, and are returned as they are, as are nil and errors already
// classified.
func Classify(err error, denied func(error) bool) error {
	var src *SourceError
	if err == nil || errors.Is(err, sink.ErrAccessDenied) || errors.As(err, &src) || !denied(err) {
		return err
	}
	return &DeniedError{Err: err}
}

// Digest reads r to its end and returns its length and hex SHA-256. With
// size >= 0 it reads at most size+1 bytes and fails with
// sink.ErrSizeMismatch when the length differs from size.
func Digest(ctx context.Context, r io.Reader, size int64) (int64, string, error) {
	h := sha256.New()
	src := io.Reader(ContextReader{Ctx: ctx, R: r})
	if size >= 0 {
		src = io.LimitReader(src, size+1)
	}
	n, err := io.Copy(h, src)
	if err != nil {
		return n, "", err
	}
	if err := CheckSize(size, n); err != nil {
		return n, "", err
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// CheckSize compares the declared size (-1: unknown) with the bytes read.
func CheckSize(want, got int64) error {
	if want >= 0 && got != want {
		if got > want {
			return fmt.Errorf("%w: body is longer than the declared %d bytes", sink.ErrSizeMismatch, want)
		}
		return fmt.Errorf("%w: body has %d bytes, declared %d", sink.ErrSizeMismatch, got, want)
	}
	return nil
}

// CheckDigest compares the expected digest (empty: unknown) with the computed one.
func CheckDigest(want, got string) error {
	if want != "" && want != got {
		return fmt.Errorf("%w: body sha256 %s, expected %s", sink.ErrChecksumMismatch, got, want)
	}
	return nil
}

// Compare decides a create-only write that met an existing object: same
// size and digest is success with Existed set; anything else a
// *sink.ConflictError.
func Compare(key string, existing sink.Object, n int64, sum string) (sink.Object, error) {
	if existing.Size == n && existing.SHA256 == sum {
		existing.Existed = true
		return existing, nil
	}
	return sink.Object{}, &sink.ConflictError{
		Key:            key,
		ExistingSize:   existing.Size,
		ExistingSHA256: existing.SHA256,
		NewSize:        n,
		NewSHA256:      sum,
	}
}
