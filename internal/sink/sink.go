// Package sink defines where archived recordings end up: a create-only,
// verifying object store behind one small interface, implemented by a local
// directory (package dir) and by S3-compatible storage (package s3).
//
// The package also builds object keys from validated record fields
// (KeyBuilder) and turns record attributes into object metadata without
// leaking phone numbers (MetaPolicy).
package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"
)

// Sink stores immutable objects.
//
// Contract, shared by every implementation and checked by package sinktest:
//
//   - Writes are create-only. Put never overwrites, truncates or re-versions an
//     existing object.
//   - When the key already exists, Put reads body to its end, computing its size
//     and SHA-256, and compares them with the stored object: equal content
//     returns the stored Object with Existed set and a nil error (a repeated
//     Put is idempotent, so a crash between a successful write and the caller's
//     checkpoint is harmless); different content returns a *ConflictError
//     (errors.Is(err, ErrConflict)) and leaves the stored object untouched.
//   - size is the expected length of body, or -1 when unknown. A body that ends
//     early or runs past size fails with ErrSizeMismatch; meta.SHA256, when
//     set, is the expected digest and a body that hashes differently fails with
//     ErrChecksumMismatch. In both cases, and whenever body returns an error or
//     ctx ends, nothing is left behind under key: no object, no temp file, no
//     open multipart upload.
//   - A nil error means the object is durable and its size and checksum were
//     confirmed by the store after the write: from the write's own response
//     where the store returns them (S3's PutObject and
//     CompleteMultipartUpload echo the checksum), else read back from it.
//
// Implementations are safe for concurrent use. Put does not close body.
type Sink interface {
	// Put streams body into key under the create-only contract above.
	Put(ctx context.Context, key string, body io.Reader, size int64, meta Meta) (Object, error)
	// Stat describes the object at key, or returns an error wrapping
	// ErrNotFound. Object.SHA256 comes from the digest recorded at write time;
	// it is empty when the store has no record of it (an object written by
	// something else, or a write interrupted before the digest was recorded).
	Stat(ctx context.Context, key string) (Object, error)
}

// Reader is implemented by sinks whose objects can be listed and read back
// (the verify command). It is optional: a Sink need not implement it.
//
// Contract, checked by package sinktest:
//
//   - List yields every object whose key starts with prefix ("" = all), in
//     ascending byte order of the keys, exactly once each, and never the
//     sink's own names (keys starting with ReservedPrefix: probes, temp
//     files, sidecars). prefix is a key prefix as passed to Put, without any
//     store prefix; it need not end at a "/". Each Object has Key, Size and
//     Modified; SHA256 is the recorded digest when the listing provides it
//     cheaply and empty otherwise (an implementation says which) — callers
//     that need it Stat the key. An error is yielded once, as the last
//     element; the caller may stop early by breaking out of the loop.
//   - Open streams the object's bytes; the caller closes the reader. A
//     missing key returns an error wrapping ErrNotFound, an invalid one
//     ErrInvalidKey. The Object describes the opened object like Stat,
//     except that SHA256 is only the digest recorded at write time (empty
//     when none is): Open never reads the bytes in advance. Callers that
//     check content count and hash what they read.
type Reader interface {
	// List yields the objects under prefix in key order; see the contract.
	List(ctx context.Context, prefix string) iter.Seq2[Object, error]
	// Open streams the object at key; see the contract.
	Open(ctx context.Context, key string) (io.ReadCloser, Object, error)
}

// Object describes a stored object.
type Object struct {
	Key       string    // key as passed to Put or Stat, without any store prefix
	Size      int64     // bytes
	SHA256    string    // lower-case hex digest of the content; see Sink.Stat
	Existed   bool      // Put found the key already holding the same content
	VersionID string    // store version, when the store versions objects
	Checksum  string    // store-side checksum as "ALGORITHM:value", when reported
	Multipart bool      // written as a multipart upload (S3)
	Modified  time.Time // last modification time reported by the store

	// Metadata and Tags are what the store holds, when it was asked for them
	// (Stat fills them; Put may leave them nil).
	Metadata map[string]string
	Tags     map[string]string
	// ContentType is the stored content type, when the store was asked for
	// it (Stat fills it where the store keeps one; Put may leave it empty).
	ContentType string
}

// Meta is what Put stores next to the bytes.
type Meta struct {
	// SHA256 is the digest the caller expects (lower-case hex), e.g. from
	// upstream metadata; empty when unknown. A body that hashes differently is
	// rejected with ErrChecksumMismatch and nothing is kept.
	SHA256 string
	// Metadata is stored as user metadata (x-amz-meta-*). Keys are lower-case
	// [a-z0-9-], values printable ASCII; see ValidateMeta. The key "sha256"
	// is reserved for the sink.
	Metadata map[string]string
	// Tags are stored as object tags (S3) or in the sidecar (dir).
	Tags map[string]string
	// ContentType defaults to application/octet-stream.
	ContentType string
	// Lock, when set, is this object's Object Lock (per-object retention
	// and legal hold, such as a retention rule gives): a sink that cannot
	// lock objects refuses the Put with ErrLockUnsupported, and keeps
	// nothing. nil: the sink's own settings, if any.
	Lock *ObjectLock
}

// ObjectLock is the Object Lock of one object. Its retention replaces the
// sink's default retention; its legal hold adds to the sink's default (a
// sink configured to hold every object still does).
type ObjectLock struct {
	// Mode is LockGovernance or LockCompliance, with RetainUntil; "" keeps
	// the sink's default retention.
	Mode        string
	RetainUntil time.Time
	// LegalHold places a legal hold on the object.
	LegalHold bool
}

// Object Lock retention modes (ObjectLock.Mode).
const (
	LockGovernance = "GOVERNANCE"
	LockCompliance = "COMPLIANCE"
)

// Requires reports whether l asks for anything (a retention or a hold).
func (l *ObjectLock) Requires() bool { return l != nil && (l.Mode != "" || l.LegalHold) }

// LegalHolder is implemented by sinks that can place and lift the legal
// hold of an existing object (S3 Object Lock). It is optional.
//
// Contract: SetLegalHold(on) is idempotent (placing a hold already placed,
// or lifting one not placed, succeeds); a missing key returns an error
// wrapping ErrNotFound, a store without Object Lock ErrLockUnsupported, a
// refused permission ErrAccessDenied. LegalHold reads the current status.
type LegalHolder interface {
	SetLegalHold(ctx context.Context, key string, on bool) error
	LegalHold(ctx context.Context, key string) (bool, error)
}

// LockReader is implemented by sinks that can read back the Object Lock
// of an object (S3 Object Lock); the verify command checks it against the
// ledger. It is optional.
//
// Contract: ObjectLock returns the object's retention (Mode "" and a zero
// RetainUntil when it has none) and whether a legal hold is placed on it.
// A missing key returns an error wrapping ErrNotFound, a store without
// Object Lock ErrLockUnsupported, a refused permission ErrAccessDenied.
type LockReader interface {
	ObjectLock(ctx context.Context, key string) (ObjectLock, error)
}

// MetaKeySHA256 is the user-metadata key (and tag key) holding the hex SHA-256
// of the content.
const MetaKeySHA256 = "sha256"

// MaxKeyLen is the longest key a sink accepts, in bytes (S3's limit).
const MaxKeyLen = 1024

// ReservedPrefix starts the names a sink keeps for itself (probes, temp files,
// sidecars); keys whose first segment starts with it are rejected.
const ReservedPrefix = ".cec-archiver"

// Sentinel errors. Test with errors.Is.
var (
	ErrNotFound         = errors.New("sink: object not found")
	ErrConflict         = errors.New("sink: key exists with different content")
	ErrChecksumMismatch = errors.New("sink: checksum mismatch")
	ErrSizeMismatch     = errors.New("sink: size mismatch")
	ErrInvalidKey       = errors.New("sink: invalid key")
	ErrInvalidMeta      = errors.New("sink: invalid metadata")
	// ErrLockUnsupported: the sink (or its bucket) cannot apply Object
	// Lock: a dir sink, a bucket without Object Lock enabled.
	ErrLockUnsupported = errors.New("sink: object lock not supported")
	// ErrAccessDenied: the store refused the credentials or the permission.
	// Each implementation classifies its own errors (S3 error codes and HTTP
	// 401/403, os.ErrPermission), so callers need not know the store.
	ErrAccessDenied = errors.New("sink: access denied")
)

// ConflictError reports a create-only write that met different content. The
// stored object is untouched; callers keep the new bytes under another key
// (reliability F19) and alert.
type ConflictError struct {
	Key            string
	ExistingSize   int64
	ExistingSHA256 string
	NewSize        int64
	NewSHA256      string
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("sink: put %s: key exists with different content (stored %d bytes sha256 %s, new %d bytes sha256 %s)",
		e.Key, e.ExistingSize, e.ExistingSHA256, e.NewSize, e.NewSHA256)
}

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// ValidateKey checks a key the way every sink does before touching storage:
// 1..MaxKeyLen bytes of valid UTF-8 without control characters or
// backslashes, relative, slash-separated, with no empty, "." or ".." segment,
// and not starting with ReservedPrefix. Keys from a KeyBuilder always pass.
func ValidateKey(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	case len(key) > MaxKeyLen:
		return fmt.Errorf("%w: %d bytes, limit %d", ErrInvalidKey, len(key), MaxKeyLen)
	case !utf8.ValidString(key):
		return fmt.Errorf("%w: invalid UTF-8", ErrInvalidKey)
	case strings.HasPrefix(key, ReservedPrefix):
		return fmt.Errorf("%w: %q is reserved", ErrInvalidKey, ReservedPrefix)
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\\' || r == utf8.RuneError {
			return fmt.Errorf("%w: character %U", ErrInvalidKey, r)
		}
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: segment %q", ErrInvalidKey, seg)
		}
	}
	return nil
}

// ValidatePrefix checks a List prefix: "" (everything), or the start of a
// key that ValidateKey would accept (it may end with "/" or mid-segment).
func ValidatePrefix(prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := ValidateKey(prefix + "x"); err != nil {
		return fmt.Errorf("prefix %q: %w", prefix, err)
	}
	return nil
}

var (
	metaKeyRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,63}$`)
	sha256RE  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Limits on Meta, the strictest of the stores we target (S3 allows 2 KiB of
// user metadata and 10 tags with 128-character keys and 256-character values).
const (
	MaxMetadataBytes = 2048
	MaxTags          = 10
	MaxTagKeyLen     = 128
	MaxTagValueLen   = 256
)

// ValidateMeta checks m against the limits every sink enforces, so that a
// record accepted by the directory sink is accepted by S3 too.
func ValidateMeta(m Meta) error {
	if m.SHA256 != "" && !sha256RE.MatchString(m.SHA256) {
		return fmt.Errorf("%w: sha256 %q is not 64 lower-case hex digits", ErrInvalidMeta, m.SHA256)
	}
	total := len(MetaKeySHA256) + 64
	for k, v := range m.Metadata {
		if !metaKeyRE.MatchString(k) {
			return fmt.Errorf("%w: metadata key %q: want [a-z0-9-], at most 64", ErrInvalidMeta, k)
		}
		if k == MetaKeySHA256 {
			return fmt.Errorf("%w: metadata key %q is reserved", ErrInvalidMeta, k)
		}
		if !printableASCII(v) {
			return fmt.Errorf("%w: metadata %q: value must be printable ASCII", ErrInvalidMeta, k)
		}
		total += len(k) + len(v)
	}
	if total > MaxMetadataBytes {
		return fmt.Errorf("%w: metadata is %d bytes, limit %d", ErrInvalidMeta, total, MaxMetadataBytes)
	}
	// One tag is reserved for the digest of multipart uploads (see package s3).
	if len(m.Tags) > MaxTags-1 {
		return fmt.Errorf("%w: %d tags, limit %d", ErrInvalidMeta, len(m.Tags), MaxTags-1)
	}
	for k, v := range m.Tags {
		if k == "" || len(k) > MaxTagKeyLen || len(v) > MaxTagValueLen {
			return fmt.Errorf("%w: tag %q: key 1..%d, value ..%d characters", ErrInvalidMeta, k, MaxTagKeyLen, MaxTagValueLen)
		}
		if k == MetaKeySHA256 {
			return fmt.Errorf("%w: tag key %q is reserved", ErrInvalidMeta, k)
		}
		if !tagText(k) || !tagText(v) {
			return fmt.Errorf("%w: tag %q: allowed are letters, digits, space and + - = . _ : / @", ErrInvalidMeta, k)
		}
	}
	if !printableASCII(m.ContentType) {
		return fmt.Errorf("%w: content type must be printable ASCII", ErrInvalidMeta)
	}
	if l := m.Lock; l != nil {
		switch {
		case l.Mode != "" && l.Mode != LockGovernance && l.Mode != LockCompliance:
			return fmt.Errorf("%w: lock mode %q: want %s or %s", ErrInvalidMeta, l.Mode, LockGovernance, LockCompliance)
		case l.Mode != "" && l.RetainUntil.IsZero():
			return fmt.Errorf("%w: lock mode %s without a retain-until date", ErrInvalidMeta, l.Mode)
		case l.Mode == "" && !l.RetainUntil.IsZero():
			return fmt.Errorf("%w: a retain-until date without a lock mode", ErrInvalidMeta)
		}
	}
	return nil
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// tagText reports whether s uses only the characters S3 accepts in tags.
func tagText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte(" +-=._:/@", c) >= 0:
		default:
			return false
		}
	}
	return true
}
