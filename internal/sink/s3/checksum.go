package s3

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc32"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// newHash returns the hash of alg, or nil for NONE.
func (alg ChecksumAlgorithm) newHash() hash.Hash {
	switch alg {
	case ChecksumSHA256:
		return sha256.New()
	case ChecksumCRC32C:
		return crc32.New(castagnoli)
	case ChecksumCRC32:
		return crc32.NewIEEE()
	}
	return nil
}

func (alg ChecksumAlgorithm) sdk() types.ChecksumAlgorithm {
	switch alg {
	case ChecksumSHA256:
		return types.ChecksumAlgorithmSha256
	case ChecksumCRC32C:
		return types.ChecksumAlgorithmCrc32c
	case ChecksumCRC32:
		return types.ChecksumAlgorithmCrc32
	}
	return ""
}

// fullHash returns the hash that runs over a whole body besides its SHA-256:
// the algorithm's own for CRCs (a part's, or the full-object value a store
// may report), nil for SHA256 (the SHA-256 is it) and NONE.
func (alg ChecksumAlgorithm) fullHash() hash.Hash {
	if alg == ChecksumSHA256 {
		return nil
	}
	return alg.newHash()
}

// partHash returns a fresh hash for a part after the first: the algorithm's,
// or SHA-256 for NONE (the part's signed payload hash).
func (alg ChecksumAlgorithm) partHash() hash.Hash {
	if alg == ChecksumNone {
		return sha256.New()
	}
	return alg.newHash()
}

// encode renders the hash of a body or part as what is sent with it: the
// checksum (base64) or, for NONE, no checksum and the payload hash to sign
// (hex).
func (alg ChecksumAlgorithm) encode(h hash.Hash) (check, payload string) {
	raw := h.Sum(nil)
	if alg == ChecksumNone {
		return "", hex.EncodeToString(raw)
	}
	return base64.StdEncoding.EncodeToString(raw), ""
}

// sum returns the base64 checksum of data (S3's encoding: big-endian bytes),
// reusing sha when alg is SHA256.
func (alg ChecksumAlgorithm) sum(data []byte, sha [32]byte) string {
	if alg == ChecksumSHA256 {
		return base64.StdEncoding.EncodeToString(sha[:])
	}
	h := alg.newHash()
	if h == nil {
		return ""
	}
	h.Write(data)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// composite returns S3's checksum of a multipart object made of parts with
// the given base64 checksums: the checksum of their concatenated raw bytes,
// base64, then "-N".
func (alg ChecksumAlgorithm) composite(parts []string) (string, error) {
	h := alg.newHash()
	if h == nil {
		return "", nil
	}
	for _, p := range parts {
		raw, err := base64.StdEncoding.DecodeString(p)
		if err != nil {
			return "", err
		}
		h.Write(raw)
	}
	return fmt.Sprintf("%s-%d", base64.StdEncoding.EncodeToString(h.Sum(nil)), len(parts)), nil
}

// setPutChecksum puts value into the PutObject field of alg.
func (alg ChecksumAlgorithm) setPut(in *s3.PutObjectInput, value string) {
	switch alg {
	case ChecksumSHA256:
		in.ChecksumSHA256 = aws.String(value)
	case ChecksumCRC32C:
		in.ChecksumCRC32C = aws.String(value)
	case ChecksumCRC32:
		in.ChecksumCRC32 = aws.String(value)
	}
}

func (alg ChecksumAlgorithm) setPart(in *s3.UploadPartInput, value string) {
	switch alg {
	case ChecksumSHA256:
		in.ChecksumSHA256 = aws.String(value)
	case ChecksumCRC32C:
		in.ChecksumCRC32C = aws.String(value)
	case ChecksumCRC32:
		in.ChecksumCRC32 = aws.String(value)
	}
}

func (alg ChecksumAlgorithm) setCompleted(p *types.CompletedPart, value string) {
	switch alg {
	case ChecksumSHA256:
		p.ChecksumSHA256 = aws.String(value)
	case ChecksumCRC32C:
		p.ChecksumCRC32C = aws.String(value)
	case ChecksumCRC32:
		p.ChecksumCRC32 = aws.String(value)
	}
}

// pick returns the value of alg among a response's checksum fields, or ""
// when the response carries none of alg (or alg is NONE).
func (alg ChecksumAlgorithm) pick(crc32, crc32c, sha256 *string) string {
	switch alg {
	case ChecksumSHA256:
		return aws.ToString(sha256)
	case ChecksumCRC32C:
		return aws.ToString(crc32c)
	case ChecksumCRC32:
		return aws.ToString(crc32)
	}
	return ""
}

// stored returns the checksum of alg the store reported on HEAD, or "".
func (alg ChecksumAlgorithm) stored(out *s3.HeadObjectOutput) string {
	return alg.pick(out.ChecksumCRC32, out.ChecksumCRC32C, out.ChecksumSHA256)
}

// reportedChecksum renders whatever checksum a HEAD returned, for Object.
func reportedChecksum(out *s3.HeadObjectOutput) string {
	for _, c := range []struct {
		name string
		v    *string
	}{
		{"SHA256", out.ChecksumSHA256}, {"CRC32C", out.ChecksumCRC32C}, {"CRC32", out.ChecksumCRC32},
		{"CRC64NVME", out.ChecksumCRC64NVME}, {"SHA1", out.ChecksumSHA1},
	} {
		if v := aws.ToString(c.v); v != "" {
			return c.name + ":" + v
		}
	}
	return ""
}

// matchChecksum compares a stored checksum with what we computed: the
// full-object value, or for multipart uploads the composite one. A store may
// omit the "-N" suffix of composite values.
func matchChecksum(stored, full, composite string) bool {
	if stored == "" {
		return true // not reported: nothing to compare
	}
	if full != "" && stored == full {
		return true
	}
	if composite == "" {
		return false
	}
	return stored == composite || stored == composite[:strings.LastIndexByte(composite, '-')]
}
