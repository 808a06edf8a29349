package s3

import (
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/smithy-go/middleware"
	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/sink"
)

// ChecksumAlgorithm is the S3 additional checksum sent with every body.
type ChecksumAlgorithm string

// Checksum algorithms. CRC32C is the default: it guards the transfer as
// well as SHA256 does against damage (the recording's own SHA-256 is
// computed anyway and stored as metadata or a tag), costs a fraction of a
// SHA-256 pass on both sides, and spares multipart uploads a second SHA-256
// pass over every part. Some S3-compatible stores reject checksum headers
// they do not know, hence the choice; Object Lock needs one (AWS refuses a
// locked PutObject without Content-MD5 or a checksum).
const (
	ChecksumSHA256 ChecksumAlgorithm = "SHA256"
	ChecksumCRC32C ChecksumAlgorithm = "CRC32C"
	ChecksumCRC32  ChecksumAlgorithm = "CRC32"
	ChecksumNone   ChecksumAlgorithm = "NONE"
)

// ConditionalWrite says how create-only is enforced.
type ConditionalWrite string

// Conditional write modes.
const (
	// ConditionalAuto probes at startup whether the store honours
	// If-None-Match: *, on PutObject and on CompleteMultipartUpload, and uses
	// it where it does; a write the store does not guard is preceded by a
	// HEAD (the default).
	ConditionalAuto ConditionalWrite = "auto"
	// ConditionalOn always sends If-None-Match: * and never HEADs before a
	// write; no probe.
	ConditionalOn ConditionalWrite = "on"
	// ConditionalOff only checks with HEAD before writing: two writers racing
	// on one key can overwrite each other (the later one wins).
	ConditionalOff ConditionalWrite = "off"
)

// Defaults of the transfer settings.
const (
	DefaultPartSize           = 16 << 20
	DefaultMultipartThreshold = 64 << 20
	DefaultUploadConcurrency  = 4
	DefaultMaxInflightBytes   = 64 << 20
	DefaultMaxSpoolBytes      = 1 << 30
	DefaultMaxBufferedBytes   = 4 << 20
	// SpoolAbove: with a SpoolDir, bodies larger than this are spooled.
	SpoolAbove = 256 << 10

	minPartSize = 5 << 20 // S3's minimum for every part but the last
	maxPartSize = 5 << 30
	maxParts    = 10000
)

// Options configure a Sink. The zero value of each transfer setting means
// its default.
type Options struct {
	Endpoint  string // base URL, e.g. https://10.0.0.5:9000; empty: AWS
	Region    string // required
	Bucket    string // required
	Prefix    string // keys are stored as Prefix/key; also the janitor's scope
	PathStyle bool   // bucket in the path instead of the host name

	// AccessKey and SecretKey select static credentials; both empty selects
	// the SDK's default chain (environment, shared config, web identity as
	// used by Kubernetes IRSA, container and instance roles). Credentials,
	// when set, overrides both (e.g. a provider that re-reads a file).
	AccessKey    string
	SecretKey    string
	SessionToken string
	Credentials  aws.CredentialsProvider
	// CAFile is a PEM bundle trusted in addition to the system roots.
	CAFile string

	Checksum         ChecksumAlgorithm // default CRC32C
	ConditionalWrite ConditionalWrite  // default auto

	SSE          string // "", "AES256" (SSE-S3) or "aws:kms" (SSE-KMS)
	SSEKMSKeyID  string // with aws:kms; empty: the bucket's default key
	StorageClass string // e.g. STANDARD_IA; empty: the bucket's default

	ObjectLockMode string // "", "GOVERNANCE" or "COMPLIANCE"
	RetentionDays  int    // retain-until = write time + days; with a mode
	LegalHold      bool

	// MultipartThreshold: bodies of known size up to it go in one PutObject;
	// larger or unknown sizes go multipart (an unknown size that turns out
	// to fit in one part still goes in one PutObject).
	MultipartThreshold int64
	PartSize           int64 // bytes per part
	UploadConcurrency  int   // parts in flight per upload
	// MaxInflightBytes bounds the body bytes buffered in memory by all
	// concurrent Puts of the Sink together (part buffers and single-put
	// buffers) when there is no SpoolDir.
	MaxInflightBytes int64
	// SpoolDir, when set, holds every body buffer above SpoolAbove (parts,
	// larger single puts) in files there, unlinked as soon as created: their
	// bytes sit in the kernel's page cache, not in the process, so its
	// memory stays flat in the size and number of recordings. The spooled
	// bytes of all Puts together stay within MaxSpoolBytes (the files kept
	// for reuse hold at most as much again); the smaller bodies stay in
	// memory, within MaxBufferedBytes. Empty: every buffer in memory, within
	// MaxInflightBytes.
	SpoolDir string
	// MaxSpoolBytes bounds the spooled bytes with SpoolDir (default 1 GiB:
	// sixteen single puts of the default MultipartThreshold at once).
	MaxSpoolBytes int64
	// MaxBufferedBytes bounds the small bodies held in memory with SpoolDir
	// (default 4 MiB: sixteen bodies of SpoolAbove at once).
	MaxBufferedBytes int64

	Logger *zap.Logger // nil: no logging
	// APIOptions are appended to the S3 client's middleware stack
	// (instrumentation, tests recording requests).
	APIOptions []func(*middleware.Stack) error
}

func (o *Options) setDefaults() {
	if o.Checksum == "" {
		o.Checksum = ChecksumCRC32C
	}
	o.Checksum = ChecksumAlgorithm(strings.ToUpper(string(o.Checksum)))
	if o.ConditionalWrite == "" {
		o.ConditionalWrite = ConditionalAuto
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.MultipartThreshold == 0 {
		o.MultipartThreshold = DefaultMultipartThreshold
	}
	if o.UploadConcurrency == 0 {
		o.UploadConcurrency = DefaultUploadConcurrency
	}
	if o.MaxInflightBytes == 0 {
		o.MaxInflightBytes = max(DefaultMaxInflightBytes, o.PartSize, o.MultipartThreshold)
	}
	if o.MaxBufferedBytes == 0 {
		o.MaxBufferedBytes = DefaultMaxBufferedBytes
	}
	if o.MaxSpoolBytes == 0 {
		o.MaxSpoolBytes = max(DefaultMaxSpoolBytes, o.PartSize, o.MultipartThreshold)
	}
	o.Prefix = strings.Trim(o.Prefix, "/")
}

// Validate reports every problem with o (after defaults), by field name.
func (o Options) Validate() error {
	o.setDefaults()
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("s3: %s: %s", field, fmt.Sprintf(format, args...)))
	}
	if o.Region == "" {
		bad("region", "required")
	}
	if o.Bucket == "" {
		bad("bucket", "required")
	}
	if o.Prefix != "" {
		if err := sink.ValidateKey(o.Prefix); err != nil {
			bad("prefix", "%v", err)
		}
	}
	if (o.AccessKey == "") != (o.SecretKey == "") {
		bad("access_key", "access key and secret key go together")
	}
	switch o.Checksum {
	case ChecksumSHA256, ChecksumCRC32C, ChecksumCRC32, ChecksumNone:
	default:
		bad("checksum", "%q: want SHA256, CRC32C, CRC32 or NONE", o.Checksum)
	}
	switch o.ConditionalWrite {
	case ConditionalAuto, ConditionalOn, ConditionalOff:
	default:
		bad("conditional_write", "%q: want auto, on or off", o.ConditionalWrite)
	}
	switch o.SSE {
	case "", "AES256":
		if o.SSEKMSKeyID != "" {
			bad("sse_kms_key_id", "needs sse = aws:kms")
		}
	case "aws:kms":
	default:
		bad("sse", "%q: want AES256 or aws:kms", o.SSE)
	}
	switch o.ObjectLockMode {
	case "":
		if o.RetentionDays != 0 {
			bad("retention_days", "needs object_lock_mode")
		}
	case "GOVERNANCE", "COMPLIANCE":
		if o.RetentionDays <= 0 {
			bad("retention_days", "must be positive with object_lock_mode")
		}
	default:
		bad("object_lock_mode", "%q: want GOVERNANCE or COMPLIANCE", o.ObjectLockMode)
	}
	if (o.ObjectLockMode != "" || o.LegalHold) && o.Checksum == ChecksumNone {
		bad("checksum", "Object Lock needs a checksum, not NONE")
	}
	if o.PartSize < minPartSize || o.PartSize > maxPartSize {
		bad("part_size", "%d: want %d..%d bytes", o.PartSize, minPartSize, int64(maxPartSize))
	}
	if o.MultipartThreshold < 0 || o.MultipartThreshold > maxPartSize {
		bad("multipart_threshold", "%d: want 0..%d bytes", o.MultipartThreshold, int64(maxPartSize))
	}
	if o.UploadConcurrency < 1 || o.UploadConcurrency > 64 {
		bad("upload_concurrency", "%d: want 1..64", o.UploadConcurrency)
	}
	if o.SpoolDir == "" && o.MaxInflightBytes < max(o.PartSize, o.MultipartThreshold) {
		bad("max_inflight_bytes", "%d: must hold at least one part (%d) and one single-put body (%d)",
			o.MaxInflightBytes, o.PartSize, o.MultipartThreshold)
	}
	if o.SpoolDir != "" && o.MaxSpoolBytes < max(o.PartSize, o.MultipartThreshold) {
		bad("max_spool_bytes", "%d: must hold at least one part (%d) and one single-put body (%d)",
			o.MaxSpoolBytes, o.PartSize, o.MultipartThreshold)
	}
	if o.SpoolDir != "" && o.MaxBufferedBytes < SpoolAbove {
		bad("max_buffered_bytes", "%d: must hold at least one in-memory body (%d bytes)", o.MaxBufferedBytes, SpoolAbove)
	}
	return errors.Join(errs...)
}
