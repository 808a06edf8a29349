// Package s3 is the sink that streams objects into S3-compatible storage
// (AWS S3, MinIO, Ceph RGW, versitygw, …) with aws-sdk-go-v2.
//
// How the sink.Sink contract is kept:
//
//   - Streaming with bounded memory. A body of known size up to
//     MultipartThreshold, or of unknown size that ends within the first part,
//     is buffered (at most one part) and sent in one PutObject; anything
//     larger goes as a multipart upload of PartSize parts, UploadConcurrency
//     of them in flight. Every buffer is drawn from one byte budget shared
//     by all Puts of the Sink (MaxInflightBytes in memory; with a SpoolDir,
//     MaxSpoolBytes in unlinked files and MaxBufferedBytes for the small
//     bodies in memory), so memory stays bounded however many Puts run.
//     Buffering the single-put body is
//     deliberate: its SHA-256 must be known before the request starts, to go
//     out as metadata, as the S3 checksum header and as the SigV4 payload
//     hash, and a buffered body can be replayed by the SDK's retries.
//   - Digests. The SHA-256 of the whole body is computed while streaming.
//     A single PutObject stores it as metadata "sha256". A multipart upload
//     stores it as metadata only when the caller supplied it (Meta.SHA256),
//     because metadata is fixed when the upload is created; otherwise it is
//     added as the tag "sha256" once the upload is complete. Each request
//     also carries an S3 checksum (Options.Checksum) that the store verifies.
//   - Verification, from the write's own response. The store checked the
//     body against the checksum sent with it (else it answers BadDigest); the
//     checksum it returns must equal the one computed here: the full value
//     from PutObject, the composite "-N" (checksum of the part checksums)
//     from CompleteMultipartUpload, or a full-object CRC; so must the size
//     when the store reports it. A response without that checksum (a store
//     that does not echo it, or Checksum NONE) is verified with one HEAD
//     instead, decided per response: size, the stored "sha256" and the
//     store's checksum when it reports one.
//   - Create-only, in the write itself: If-None-Match: * on PutObject and on
//     CompleteMultipartUpload. A new object costs one request (PutObject),
//     or CreateMultipartUpload, the parts and CompleteMultipartUpload (and
//     PutObjectTagging for the digest tag, see above). An
//     existing key answers 412; only then a HEAD (plus GetObjectTagging when
//     the digest is only a tag) compares: the same digest is Existed, another
//     is a conflict, and a multipart upload is aborted. The price of no HEAD
//     first: a repeated Put of an existing large object uploads its parts
//     again before learning that. New probes whether the store honours the
//     header, on PutObject and on CompleteMultipartUpload; where it does not,
//     that write is preceded by a HEAD (an existing key is then never
//     uploaded: the body is hashed and compared), which a concurrent writer
//     can race; New logs that.
//   - Nothing left behind. A failed multipart upload (source error, size or
//     digest mismatch, cancelled context) is aborted; Janitor aborts the
//     stale uploads of a crashed process.
package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/middleware"
	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/internal/stream"
)

// Sink writes objects to one bucket under one prefix.
type Sink struct {
	opts        Options
	client      *s3.Client
	files       *fileBodyClient // the client's HTTP client
	log         *zap.Logger
	pool        *bufPool
	budget      *budget
	conditional bool // send If-None-Match: * on PutObject
	// conditionalComplete: send it on CompleteMultipartUpload too. Without
	// it, multipart uploads HEAD the key first.
	conditionalComplete bool

	// Logged once each: a write response without the checksum, so the write
	// was verified with a HEAD.
	noEchoPut, noEchoComplete sync.Once
}

var _ sink.Sink = (*Sink)(nil)

// New validates opts, builds the client and, with ConditionalAuto, probes
// whether the store honours If-None-Match on PutObject and on
// CompleteMultipartUpload (one tiny object,
// Prefix/.cec-archiver/probe-if-none-match, written once; the multipart
// probe is aborted).
func New(ctx context.Context, opts Options) (*Sink, error) {
	s, err := newSink(ctx, opts)
	return s, classify(err)
}

func newSink(ctx context.Context, opts Options) (*Sink, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.setDefaults()
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	log = log.Named("sink.s3").With(zap.String("bucket", opts.Bucket))
	client, files, err := newClient(ctx, opts)
	if err != nil {
		return nil, err
	}
	s := &Sink{opts: opts, client: client, files: files, log: log}
	if opts.SpoolDir != "" {
		s.budget = newBudget(opts.MaxBufferedBytes)
		s.pool = newBufPool(s.budget, opts.PartSize).withSpool(opts.SpoolDir, newBudget(opts.MaxSpoolBytes), SpoolAbove)
	} else {
		s.budget = newBudget(opts.MaxInflightBytes)
		s.pool = newBufPool(s.budget, opts.PartSize)
	}
	switch opts.ConditionalWrite {
	case ConditionalOn:
		s.conditional, s.conditionalComplete = true, true
	case ConditionalAuto:
		ok, err := s.probeConditional(ctx)
		if err != nil {
			return nil, fmt.Errorf("s3: probe conditional writes: %w", err)
		}
		s.conditional = ok
		if ok {
			ok, err = s.probeConditionalComplete(ctx)
			if err != nil {
				return nil, fmt.Errorf("s3: probe conditional multipart completion: %w", err)
			}
			s.conditionalComplete = ok
		}
	}
	switch {
	case !s.conditional:
		log.Warn("create-only writes fall back to HEAD-then-PUT: concurrent writers of one key can overwrite each other",
			zap.String("conditional_write", string(opts.ConditionalWrite)))
	case !s.conditionalComplete:
		log.Warn("the store ignores If-None-Match on CompleteMultipartUpload: multipart uploads fall back to HEAD-then-upload, "+
			"so concurrent writers of one large key can overwrite each other",
			zap.String("conditional_write", string(opts.ConditionalWrite)))
	}
	return s, nil
}

// Conditional reports whether create-only is enforced by the store
// (If-None-Match) rather than by HEAD-then-write.
func (s *Sink) Conditional() bool { return s.conditional }

// Client returns the S3 client (for the verify tooling and tests).
func (s *Sink) Client() *s3.Client { return s.client }

// Bucket returns the configured bucket.
func (s *Sink) Bucket() string { return s.opts.Bucket }

// ObjectKey returns the S3 key that stores key.
func (s *Sink) ObjectKey(key string) string {
	if s.opts.Prefix == "" {
		return key
	}
	return s.opts.Prefix + "/" + key
}

func newClient(ctx context.Context, opts Options) (*s3.Client, *fileBodyClient, error) {
	var pool *x509.CertPool
	if opts.CAFile != "" {
		pem, err := os.ReadFile(opts.CAFile)
		if err != nil {
			return nil, nil, fmt.Errorf("s3: ca_file: %w", err)
		}
		pool, err = x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, nil, fmt.Errorf("s3: ca_file %s: no PEM certificate found", opts.CAFile)
		}
	}
	// A BuildableClient, not an *http.Client: with AWS_CA_BUNDLE set the SDK
	// only accepts a client it can add transport options to.
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{}
		}
		tr.TLSClientConfig.MinVersion = tls.VersionTLS12
		if pool != nil {
			tr.TLSClientConfig.RootCAs = pool
		}
		tr.MaxIdleConnsPerHost = max(tr.MaxIdleConnsPerHost, 4*opts.UploadConcurrency)
		tr.WriteBufferSize = writeBufferSize       // headers and a small body in one write (membody.go)
		tr.ResponseHeaderTimeout = 5 * time.Minute // a part upload's answer after its body
	})
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRegion(opts.Region),
		config.WithHTTPClient(httpClient),
		// The sink sets every checksum itself; the SDK must not add its
		// default CRC32 trailer, which some stores reject.
		config.WithRequestChecksumCalculation(aws.RequestChecksumCalculationWhenRequired),
		config.WithResponseChecksumValidation(aws.ResponseChecksumValidationWhenRequired),
	}
	switch {
	case opts.Credentials != nil:
		loadOpts = append(loadOpts, config.WithCredentialsProvider(opts.Credentials))
	case opts.AccessKey != "":
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(opts.AccessKey, opts.SecretKey, opts.SessionToken)))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, nil, fmt.Errorf("s3: load aws config: %w", err)
	}
	files := &fileBodyClient{}
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if opts.Endpoint != "" {
			o.BaseEndpoint = aws.String(opts.Endpoint)
		}
		o.UsePathStyle = opts.PathStyle
		next := o.EndpointResolverV2
		if next == nil {
			next = s3.NewDefaultEndpointResolverV2()
		}
		o.EndpointResolverV2 = newCachedEndpoints(next)
		files.next = o.HTTPClient
		o.HTTPClient = files
		o.APIOptions = append(o.APIOptions, opts.APIOptions...)
	}), files, nil
}

// probeConditional writes the probe object with If-None-Match twice: a
// store that honours the header refuses at least the second write.
func (s *Sink) probeConditional(ctx context.Context) (bool, error) {
	key := s.probeKey()
	body := []byte("cec-archiver conditional write probe\n")
	for range 2 {
		sum := sha256.Sum256(body)
		in := &s3.PutObjectInput{
			Bucket:        aws.String(s.opts.Bucket),
			Key:           aws.String(key),
			Body:          bytes.NewReader(body),
			ContentLength: aws.Int64(int64(len(body))),
			IfNoneMatch:   aws.String("*"),
		}
		s.opts.Checksum.setPut(in, s.opts.Checksum.sum(body, sum))
		_, err := s.client.PutObject(ctx, in, s.signing(func() string { return hex.EncodeToString(sum[:]) }))
		switch {
		case err == nil:
			continue
		case isPreconditionFailed(err):
			s.log.Debug("store honours If-None-Match")
			return true, nil
		case isNotImplemented(err):
			return false, nil
		default:
			return false, err
		}
	}
	return false, nil
}

// probeKey is the probe object's key.
func (s *Sink) probeKey() string { return s.ObjectKey(sink.ReservedPrefix + "/probe-if-none-match") }

// probeConditionalComplete asks whether the store honours If-None-Match on
// CompleteMultipartUpload as well: a one-part upload onto the probe object
// (which probeConditional left in place) must get 412. The upload is then
// aborted. A store that completes it regardless has overwritten the probe
// object with the same bytes. 400 and 501 count as "not honoured": a store
// that rejects the header on completion must not be sent it.
func (s *Sink) probeConditionalComplete(ctx context.Context) (bool, error) {
	key := s.probeKey()
	body := []byte("cec-archiver conditional write probe\n")
	out, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(s.opts.Bucket),
		Key:               aws.String(key),
		ChecksumAlgorithm: s.opts.Checksum.sdk(),
	})
	if err != nil {
		return false, err
	}
	uploadID := out.UploadId
	completed := false
	defer func() {
		if completed {
			return
		}
		if err := s.abortUpload(ctx, key, aws.ToString(uploadID)); err != nil {
			s.log.Warn("abort the probe's multipart upload; the janitor will retry", zap.Error(err))
		}
	}()
	sum := sha256.Sum256(body)
	check := s.opts.Checksum.sum(body, sum)
	part := &s3.UploadPartInput{
		Bucket:        aws.String(s.opts.Bucket),
		Key:           aws.String(key),
		UploadId:      uploadID,
		PartNumber:    aws.Int32(1),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))),
	}
	s.opts.Checksum.setPart(part, check)
	pout, err := s.client.UploadPart(ctx, part, s.signing(func() string { return hex.EncodeToString(sum[:]) }))
	if err != nil {
		return false, err
	}
	done := types.CompletedPart{PartNumber: aws.Int32(1), ETag: pout.ETag}
	s.opts.Checksum.setCompleted(&done, check)
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.opts.Bucket),
		Key:             aws.String(key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: []types.CompletedPart{done}},
		IfNoneMatch:     aws.String("*"),
	})
	_, status := apiCode(err)
	switch {
	case err == nil:
		completed = true
		return false, nil
	case isPreconditionFailed(err):
		s.log.Debug("store honours If-None-Match on CompleteMultipartUpload")
		return true, nil
	case isNotImplemented(err) || status == http.StatusBadRequest:
		s.log.Info("store rejects If-None-Match on CompleteMultipartUpload", zap.Error(err))
		return false, nil
	default:
		return false, err
	}
}

// Put implements sink.Sink.
func (s *Sink) Put(ctx context.Context, key string, body io.Reader, size int64, meta sink.Meta) (sink.Object, error) {
	obj, err := s.put(ctx, key, body, size, meta)
	if err != nil {
		return sink.Object{}, fmt.Errorf("s3: put %s: %w", key, classify(err))
	}
	return obj, nil
}

func (s *Sink) put(ctx context.Context, key string, body io.Reader, size int64, meta sink.Meta) (sink.Object, error) {
	if err := sink.ValidateKey(key); err != nil {
		return sink.Object{}, err
	}
	if err := sink.ValidateMeta(meta); err != nil {
		return sink.Object{}, err
	}
	if meta.Lock.Requires() && s.opts.Checksum == ChecksumNone {
		return sink.Object{}, fmt.Errorf("%w: S3 requires a checksum with Object Lock, and the sink sends none (checksum NONE)", sink.ErrLockUnsupported)
	}
	if size > maxParts*s.opts.PartSize {
		return sink.Object{}, fmt.Errorf("%d bytes exceed %d parts of %d bytes", size, maxParts, s.opts.PartSize)
	}
	body = stream.ContextReader{Ctx: ctx, R: stream.SourceReader{R: body}}

	if !s.conditional {
		// HEAD-then-write: without If-None-Match the HEAD is the only guard.
		existing, err := s.existing(ctx, key)
		switch {
		case err == nil:
			return s.compare(ctx, key, existing, body, size, meta)
		case !errors.Is(err, sink.ErrNotFound):
			return sink.Object{}, err
		}
	}

	// Every byte read is hashed once on the way in: the body's SHA-256, and
	// with a CRC checksum its CRC (single put) or full-object CRC.
	sha, full := sha256.New(), s.opts.Checksum.fullHash()
	if size >= 0 && size <= s.opts.MultipartThreshold {
		buf, err := s.pool.get(ctx, size)
		if err != nil {
			return sink.Object{}, err
		}
		defer s.pool.put(buf)
		n, err := buf.fill(body, hashWriter(sha, full))
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return sink.Object{}, stream.CheckSize(size, n)
		}
		if err != nil {
			return sink.Object{}, err
		}
		var one [1]byte
		switch m, err := io.ReadFull(body, one[:]); {
		case m > 0:
			return sink.Object{}, stream.CheckSize(size, size+1)
		case err != io.EOF:
			return sink.Object{}, err // the source failed after its last byte
		}
		return s.putSingle(ctx, key, buf, sha, full, meta)
	}

	buf, err := s.pool.get(ctx, s.opts.PartSize)
	if err != nil {
		return sink.Object{}, err
	}
	n, err := buf.fill(body, hashWriter(sha, full))
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		// The whole body fits in one part: one PutObject.
		defer s.pool.put(buf)
		if err := stream.CheckSize(size, n); err != nil {
			return sink.Object{}, err
		}
		return s.putSingle(ctx, key, buf, sha, full, meta)
	case err != nil:
		s.pool.put(buf)
		return sink.Object{}, err
	}
	if s.conditional && !s.conditionalComplete {
		// The store guards PutObject but not the completion: HEAD first.
		existing, err := s.existing(ctx, key)
		switch {
		case err == nil:
			defer s.pool.put(buf)
			return s.compare(ctx, key, existing, io.MultiReader(buf.reader(), body), size, meta)
		case !errors.Is(err, sink.ErrNotFound):
			s.pool.put(buf)
			return sink.Object{}, err
		}
	}
	return s.putMultipart(ctx, key, buf, sha, full, body, size, meta)
}

// compare hashes body and decides against the existing object.
func (s *Sink) compare(ctx context.Context, key string, existing sink.Object, body io.Reader, size int64, meta sink.Meta) (sink.Object, error) {
	n, sum, err := stream.Digest(ctx, body, size)
	if err != nil {
		return sink.Object{}, err
	}
	if err := stream.CheckDigest(meta.SHA256, sum); err != nil {
		return sink.Object{}, err
	}
	return s.compareDigest(ctx, key, existing, n, sum)
}

// compareDigest compares (n, sum) with an existing object, hashing the
// stored bytes when the store holds no digest for them.
func (s *Sink) compareDigest(ctx context.Context, key string, existing sink.Object, n int64, sum string) (sink.Object, error) {
	if existing.SHA256 == "" && existing.Size == n {
		s.log.Info("existing object has no recorded sha256; hashing its content", zap.String("key", key))
		got, err := s.digestObject(ctx, key)
		if err != nil {
			return sink.Object{}, err
		}
		existing.SHA256 = got
	}
	return stream.Compare(key, existing, n, sum)
}

func (s *Sink) digestObject(ctx context.Context, key string) (string, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.opts.Bucket), Key: aws.String(s.ObjectKey(key))})
	if err != nil {
		return "", fmt.Errorf("read existing object: %w", err)
	}
	defer out.Body.Close()
	_, sum, err := stream.Digest(ctx, out.Body, aws.ToInt64(out.ContentLength))
	if err != nil {
		return "", fmt.Errorf("read existing object: %w", err)
	}
	return sum, nil
}

// objectAttrs fills what PutObject and CreateMultipartUpload share.
type objectAttrs struct {
	metadata     map[string]string
	tagging      *string
	contentType  *string
	sse          types.ServerSideEncryption
	kmsKeyID     *string
	storageClass types.StorageClass
	lockMode     types.ObjectLockMode
	retainUntil  *time.Time
	legalHold    types.ObjectLockLegalHoldStatus
}

func (s *Sink) attrs(meta sink.Meta, sha string) objectAttrs {
	a := objectAttrs{metadata: map[string]string{}}
	for k, v := range meta.Metadata {
		a.metadata[k] = v
	}
	if sha != "" {
		a.metadata[sink.MetaKeySHA256] = sha
	}
	if len(meta.Tags) > 0 {
		a.tagging = aws.String(encodeTags(meta.Tags))
	}
	ct := meta.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	a.contentType = aws.String(ct)
	if s.opts.SSE != "" {
		a.sse = types.ServerSideEncryption(s.opts.SSE)
		if s.opts.SSEKMSKeyID != "" {
			a.kmsKeyID = aws.String(s.opts.SSEKMSKeyID)
		}
	}
	a.storageClass = types.StorageClass(s.opts.StorageClass)
	a.lockMode, a.retainUntil, a.legalHold = s.objectLock(meta.Lock)
	return a
}

// encodeTags renders the x-amz-tagging header: a URL query with spaces as
// %20 (not "+", which some stores take literally).
func encodeTags(tags map[string]string) string {
	keys := make([]string, 0, len(tags))
	for k := range tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	esc := func(s string) string { return strings.ReplaceAll(url.QueryEscape(s), "+", "%20") }
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(esc(k) + "=" + esc(tags[k]))
	}
	return b.String()
}

// putSingle sends buf (filled; sha and full hashed it) in one PutObject.
func (s *Sink) putSingle(ctx context.Context, key string, buf *buffer, sha, full hash.Hash, meta sink.Meta) (sink.Object, error) {
	n := buf.len()
	sum := hex.EncodeToString(sha.Sum(nil))
	if err := stream.CheckDigest(meta.SHA256, sum); err != nil {
		return sink.Object{}, err
	}
	var check string
	if full != nil {
		check, _ = s.opts.Checksum.encode(full)
	} else {
		check, _ = s.opts.Checksum.encode(sha)
	}
	a := s.attrs(meta, sum)
	in := &s3.PutObjectInput{
		Bucket:                    aws.String(s.opts.Bucket),
		Key:                       aws.String(s.ObjectKey(key)),
		Body:                      buf.reader(),
		ContentLength:             aws.Int64(n),
		ContentType:               a.contentType,
		Metadata:                  a.metadata,
		Tagging:                   a.tagging,
		ServerSideEncryption:      a.sse,
		SSEKMSKeyId:               a.kmsKeyID,
		StorageClass:              a.storageClass,
		ObjectLockMode:            a.lockMode,
		ObjectLockRetainUntilDate: a.retainUntil,
		ObjectLockLegalHoldStatus: a.legalHold,
	}
	if s.conditional {
		in.IfNoneMatch = aws.String("*")
	}
	s.opts.Checksum.setPut(in, check)
	out, err := s.client.PutObject(withBody(ctx, buf), in, s.signing(func() string { return sum }), noErrorIn200)
	if err != nil {
		if isPreconditionFailed(err) {
			return s.compareExisting(ctx, key, n, sum)
		}
		return sink.Object{}, err
	}
	return s.confirm(ctx, key, n, sum, check, "", written{
		op:        "PutObject",
		checksum:  s.opts.Checksum.pick(out.ChecksumCRC32, out.ChecksumCRC32C, out.ChecksumSHA256),
		size:      out.Size,
		versionID: aws.ToString(out.VersionId),
		metadata:  out.ResultMetadata,
		noEcho:    &s.noEchoPut,
	})
}

// compareExisting handles 412 from a conditional write: the key exists
// (written before, or by a writer that won a race).
func (s *Sink) compareExisting(ctx context.Context, key string, n int64, sum string) (sink.Object, error) {
	existing, err := s.existing(ctx, key)
	if err != nil {
		return sink.Object{}, fmt.Errorf("key exists (412): %w", err)
	}
	return s.compareDigest(ctx, key, existing, n, sum)
}

// written is what a write's response reports about the stored object.
type written struct {
	op        string // for the log
	checksum  string // the store's checksum of the configured algorithm; "" when absent
	size      *int64 // when the store reports it (x-amz-object-size)
	versionID string // when versioned
	metadata  middleware.Metadata
	noEcho    *sync.Once // logs the HEAD fallback of op once
}

// confirm verifies a write from its response, without another request: the
// store checked the body against the checksum we sent (else it had answered
// BadDigest), and the checksum it returns, computed over what it stored,
// must equal ours (for multipart: the composite of the parts, or a
// full-object CRC); the size too, when reported. The ETag is not compared:
// it is an MD5 only for some encryption modes, and the checksum is stronger.
// A response without the checksum (a store that does not echo it, or
// Checksum NONE) is verified with one HEAD instead; that is decided per
// response, and logged once per operation at debug.
func (s *Sink) confirm(ctx context.Context, key string, n int64, sum, full, composite string, w written) (sink.Object, error) {
	if w.checksum == "" {
		w.noEcho.Do(func() {
			s.log.Debug("write response carries no checksum; verifying with HEAD",
				zap.String("op", w.op), zap.String("checksum", string(s.opts.Checksum)))
		})
		obj, err := s.verify(ctx, key, n, sum, full, composite)
		if err != nil {
			return sink.Object{}, err
		}
		if obj.VersionID == "" {
			obj.VersionID = w.versionID
		}
		return obj, nil
	}
	switch {
	case w.size != nil && *w.size != n:
		return sink.Object{}, fmt.Errorf("verify: %w: store reports %d bytes, wrote %d", sink.ErrSizeMismatch, *w.size, n)
	case !matchChecksum(w.checksum, full, composite):
		return sink.Object{}, fmt.Errorf("verify: %w: store reports %s %s, wrote %s",
			sink.ErrChecksumMismatch, s.opts.Checksum, w.checksum, strings.TrimSpace(full+" "+composite))
	}
	modified, ok := awsmiddleware.GetServerTime(w.metadata)
	if !ok {
		modified = time.Now()
	}
	return sink.Object{
		Key:       key,
		Size:      n,
		SHA256:    sum,
		VersionID: w.versionID,
		Checksum:  string(s.opts.Checksum) + ":" + w.checksum,
		Modified:  modified.UTC(),
	}, nil
}

// verify reads back what was written: size, recorded digest and the
// store's checksum (when it reports one).
func (s *Sink) verify(ctx context.Context, key string, n int64, sum, full, composite string) (sink.Object, error) {
	out, err := s.head(ctx, key)
	if err != nil {
		return sink.Object{}, fmt.Errorf("verify: %w", err)
	}
	obj := objectFromHead(key, out)
	stored := s.opts.Checksum.stored(out)
	switch {
	case obj.Size != n:
		return sink.Object{}, fmt.Errorf("verify: %w: stored %d bytes, wrote %d", sink.ErrSizeMismatch, obj.Size, n)
	case obj.SHA256 != "" && obj.SHA256 != sum:
		return sink.Object{}, fmt.Errorf("verify: %w: stored sha256 %s, wrote %s", sink.ErrChecksumMismatch, obj.SHA256, sum)
	case !matchChecksum(stored, full, composite):
		return sink.Object{}, fmt.Errorf("verify: %w: store reports %s %s, wrote %s",
			sink.ErrChecksumMismatch, s.opts.Checksum, stored, strings.TrimSpace(full+" "+composite))
	}
	if stored == "" && s.opts.Checksum != ChecksumNone {
		s.log.Debug("store reports no checksum; verified size and digest only", zap.String("key", key))
	}
	obj.SHA256 = sum
	return obj, nil
}

// Stat implements sink.Sink. The digest comes from the "sha256" metadata,
// else from the "sha256" tag (multipart uploads of unknown digest).
func (s *Sink) Stat(ctx context.Context, key string) (sink.Object, error) {
	if err := sink.ValidateKey(key); err != nil {
		return sink.Object{}, fmt.Errorf("s3: stat %s: %w", key, err)
	}
	obj, err := s.stat(ctx, key)
	if err != nil {
		return sink.Object{}, fmt.Errorf("s3: stat %s: %w", key, classify(err))
	}
	return obj, nil
}

// existing describes the object at key for a comparison: one HEAD, plus
// GetObjectTagging only when the digest is not in the metadata (multipart
// uploads of unknown digest record it as a tag).
func (s *Sink) existing(ctx context.Context, key string) (sink.Object, error) {
	out, err := s.head(ctx, key)
	if err != nil {
		return sink.Object{}, err
	}
	obj := objectFromHead(key, out)
	if obj.SHA256 == "" {
		tags, err := s.tags(ctx, key)
		if err != nil {
			s.log.Debug("cannot read tags", zap.String("key", key), zap.Error(err))
		}
		obj.Tags = tags
		obj.SHA256 = tags[sink.MetaKeySHA256]
	}
	return obj, nil
}

func (s *Sink) stat(ctx context.Context, key string) (sink.Object, error) {
	obj, err := s.existing(ctx, key)
	if err != nil || obj.Tags != nil {
		return obj, err
	}
	tags, err := s.tags(ctx, key)
	if err != nil {
		s.log.Debug("cannot read tags", zap.String("key", key), zap.Error(err))
	}
	obj.Tags = tags
	return obj, nil
}

func (s *Sink) head(ctx context.Context, key string) (*s3.HeadObjectOutput, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:       aws.String(s.opts.Bucket),
		Key:          aws.String(s.ObjectKey(key)),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		if isNotFound(err) {
			return nil, sink.ErrNotFound
		}
		return nil, err
	}
	return out, nil
}

func (s *Sink) tags(ctx context.Context, key string) (map[string]string, error) {
	out, err := s.client.GetObjectTagging(ctx, &s3.GetObjectTaggingInput{
		Bucket: aws.String(s.opts.Bucket),
		Key:    aws.String(s.ObjectKey(key)),
	})
	if err != nil {
		return nil, err
	}
	tags := make(map[string]string, len(out.TagSet))
	for _, t := range out.TagSet {
		tags[aws.ToString(t.Key)] = aws.ToString(t.Value)
	}
	return tags, nil
}

func objectFromHead(key string, out *s3.HeadObjectOutput) sink.Object {
	sha := out.Metadata[sink.MetaKeySHA256]
	etag := strings.Trim(aws.ToString(out.ETag), `"`)
	checksum := reportedChecksum(out)
	return sink.Object{
		Key:       key,
		Size:      aws.ToInt64(out.ContentLength),
		SHA256:    sha,
		VersionID: aws.ToString(out.VersionId),
		Checksum:  checksum,
		Multipart: strings.Contains(etag, "-") || aws.ToInt32(out.PartsCount) > 1,
		Modified:  aws.ToTime(out.LastModified),
		Metadata:  out.Metadata,

		ContentType: aws.ToString(out.ContentType),
	}
}

// Janitor aborts the multipart uploads under Prefix started more than
// olderThan ago: uploads of a process that died mid-transfer (reliability
// F2). The sink never resumes uploads, so none of them is still wanted; keep
// olderThan above the longest plausible upload when several archivers share
// a prefix. It returns how many uploads it aborted.
func (s *Sink) Janitor(ctx context.Context, olderThan time.Duration) (int, error) {
	in := &s3.ListMultipartUploadsInput{Bucket: aws.String(s.opts.Bucket)}
	if s.opts.Prefix != "" {
		in.Prefix = aws.String(s.opts.Prefix + "/")
	}
	cutoff := time.Now().Add(-olderThan)
	aborted := 0
	for {
		out, err := s.client.ListMultipartUploads(ctx, in)
		if err != nil {
			return aborted, fmt.Errorf("s3: janitor: list uploads: %w", classify(err))
		}
		for _, u := range out.Uploads {
			if u.Initiated != nil && u.Initiated.After(cutoff) {
				continue
			}
			_, err := s.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{
				Bucket: aws.String(s.opts.Bucket), Key: u.Key, UploadId: u.UploadId,
			})
			if err != nil && !isNoSuchUpload(err) {
				return aborted, fmt.Errorf("s3: janitor: abort %s: %w", aws.ToString(u.Key), classify(err))
			}
			aborted++
			s.log.Info("aborted stale multipart upload", zap.String("key", aws.ToString(u.Key)),
				zap.Timep("initiated", u.Initiated))
		}
		if !aws.ToBool(out.IsTruncated) {
			return aborted, nil
		}
		in.KeyMarker, in.UploadIdMarker = out.NextKeyMarker, out.NextUploadIdMarker
	}
}

// noErrorIn200 drops the SDK's search of a 200 answer for an error document
// from a PutObject, whose success has no body: it allocated an XML decoder
// (a 4 KiB buffer) for every object to find the body empty. The write is confirmed by
// its response's checksum anyway (confirm): a 200 carrying an error has
// none, and is verified by a HEAD, which fails it.
func noErrorIn200(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
		// Absent from another SDK version: then there is nothing to drop.
		_, _ = st.Deserialize.Remove("S3:ProcessResponseFor200Error")
		return nil
	})
}

// unsignedPayload is SigV4's payload hash for a body it does not hash.
const unsignedPayload = "UNSIGNED-PAYLOAD"

// signing says how a body enters the SigV4 signature. With an S3 checksum
// (any Checksum but NONE) the payload is UNSIGNED-PAYLOAD: the checksum
// header, itself signed, binds the body to the request, the store verifies
// it (else BadDigest), and neither side hashes the body a second time for
// the signature. Without a checksum the body's SHA-256 (hexSum, which the
// caller computed anyway or computes only for this) is signed, the SDK
// never reading the body twice.
func (s *Sink) signing(hexSum func() string) func(*s3.Options) {
	if s.opts.Checksum != ChecksumNone {
		return withPayloadHash(unsignedPayload)
	}
	return withPayloadHash(hexSum())
}

// withPayloadHash hands the SigV4 signer the payload hash: the body's
// SHA-256 we already computed, or unsignedPayload.
func withPayloadHash(hexSum string) func(*s3.Options) {
	return func(o *s3.Options) {
		o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
			return st.Initialize.Add(middleware.InitializeMiddlewareFunc("cecPayloadHash",
				func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
					return next.HandleInitialize(v4.SetPayloadHash(ctx, hexSum), in)
				}), middleware.After)
		})
	}
}

func apiCode(err error) (string, int) {
	var status int
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode(), status
	}
	return "", status
}

// deniedCodes are the S3 error codes of refused credentials or access.
var deniedCodes = map[string]bool{
	"AccessDenied":          true,
	"InvalidAccessKeyId":    true,
	"SignatureDoesNotMatch": true,
	"InvalidToken":          true,
	"ExpiredToken":          true,
	"AllAccessDisabled":     true,
}

// isAccessDenied reports whether err is the store refusing the credentials
// or the permission: one of deniedCodes, or HTTP 401/403.
func isAccessDenied(err error) bool {
	code, status := apiCode(err)
	return deniedCodes[code] || status == http.StatusUnauthorized || status == http.StatusForbidden
}

// classify makes errors.Is(err, sink.ErrAccessDenied) hold for the errors of
// refused access. Every exported method passes its errors through it.
func classify(err error) error { return stream.Classify(err, isAccessDenied) }

func isPreconditionFailed(err error) bool {
	code, status := apiCode(err)
	return status == http.StatusPreconditionFailed || code == "PreconditionFailed"
}

func isNotImplemented(err error) bool {
	code, status := apiCode(err)
	return status == http.StatusNotImplemented || code == "NotImplemented"
}

func isNotFound(err error) bool {
	var nf *types.NotFound
	var nk *types.NoSuchKey
	code, status := apiCode(err)
	return errors.As(err, &nf) || errors.As(err, &nk) || status == http.StatusNotFound || code == "NotFound" || code == "NoSuchKey"
}

func isNoSuchUpload(err error) bool {
	var nu *types.NoSuchUpload
	code, _ := apiCode(err)
	return errors.As(err, &nu) || code == "NoSuchUpload"
}

// sortParts orders completed parts by number, as CompleteMultipartUpload
// requires.
func sortParts(parts []types.CompletedPart) {
	sort.Slice(parts, func(i, j int) bool { return aws.ToInt32(parts[i].PartNumber) < aws.ToInt32(parts[j].PartNumber) })
}
