package s3

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/sink"
	"github.com/cec-archiver/cec-archiver/internal/sink/internal/stream"
)

// abortTimeout bounds the clean-up of a failed upload, which runs even when
// the caller's context is already cancelled.
const abortTimeout = time.Minute

// putMultipart uploads first (a full part already read, hashed by sha and
// full) and the rest of body as a multipart upload. It owns first.
func (s *Sink) putMultipart(ctx context.Context, key string, first *buffer, sha, full hash.Hash, body io.Reader, size int64, meta sink.Meta) (_ sink.Object, err error) {
	objKey := s.ObjectKey(key)
	// The digest goes into metadata only when known before the upload
	// starts; otherwise it becomes a tag after completion.
	a := s.attrs(meta, meta.SHA256)
	create := &s3.CreateMultipartUploadInput{
		Bucket:                    aws.String(s.opts.Bucket),
		Key:                       aws.String(objKey),
		ContentType:               a.contentType,
		Metadata:                  a.metadata,
		Tagging:                   a.tagging,
		ServerSideEncryption:      a.sse,
		SSEKMSKeyId:               a.kmsKeyID,
		StorageClass:              a.storageClass,
		ObjectLockMode:            a.lockMode,
		ObjectLockRetainUntilDate: a.retainUntil,
		ObjectLockLegalHoldStatus: a.legalHold,
		ChecksumAlgorithm:         s.opts.Checksum.sdk(),
	}
	out, err := s.client.CreateMultipartUpload(ctx, create)
	if err != nil {
		s.pool.put(first)
		return sink.Object{}, fmt.Errorf("create multipart upload: %w", err)
	}
	uploadID := aws.ToString(out.UploadId)
	log := s.log.With(zap.String("key", key), zap.String("upload_id", uploadID))
	completed := false
	defer func() {
		if completed {
			return
		}
		// Never leave a half-written upload behind (reliability F7, F9).
		if aerr := s.abortUpload(ctx, objKey, uploadID); aerr != nil {
			log.Error("abort multipart upload; the janitor will retry", zap.Error(aerr))
			err = errors.Join(err, fmt.Errorf("abort multipart upload: %w", aerr))
		}
	}()

	up := &uploader{s: s, objKey: objKey, uploadID: uploadID, slots: make(chan struct{}, s.opts.UploadConcurrency)}
	up.ctx, up.cancel = context.WithCancelCause(ctx)
	defer up.cancel(nil)

	total, sum, fullSum, readErr := up.run(first, sha, full, body, size)
	up.wg.Wait()
	if readErr != nil {
		return sink.Object{}, readErr
	}
	if cause := context.Cause(up.ctx); cause != nil {
		return sink.Object{}, cause // a part failed, or ctx ended
	}
	if err := stream.CheckSize(size, total); err != nil {
		return sink.Object{}, err
	}
	if err := stream.CheckDigest(meta.SHA256, sum); err != nil {
		return sink.Object{}, err
	}

	sortParts(up.parts)
	partSums := make([]string, len(up.parts))
	for i, p := range up.parts {
		partSums[i] = up.partSums[aws.ToInt32(p.PartNumber)]
	}
	composite, err := s.opts.Checksum.composite(partSums)
	if err != nil {
		return sink.Object{}, err
	}
	complete := &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.opts.Bucket),
		Key:             aws.String(objKey),
		UploadId:        aws.String(uploadID),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: up.parts},
	}
	if s.conditionalComplete {
		complete.IfNoneMatch = aws.String("*")
	}
	cout, err := s.client.CompleteMultipartUpload(ctx, complete)
	if err != nil {
		if isPreconditionFailed(err) {
			return s.compareExisting(ctx, key, total, sum) // the deferred abort drops our parts
		}
		return sink.Object{}, fmt.Errorf("complete multipart upload: %w", err)
	}
	completed = true
	obj, err := s.confirm(ctx, key, total, sum, fullSum, composite, written{
		op:        "CompleteMultipartUpload",
		checksum:  s.opts.Checksum.pick(cout.ChecksumCRC32, cout.ChecksumCRC32C, cout.ChecksumSHA256),
		versionID: aws.ToString(cout.VersionId),
		metadata:  cout.ResultMetadata,
		noEcho:    &s.noEchoComplete,
	})
	if err != nil {
		return sink.Object{}, err
	}
	obj.Multipart = true
	if meta.SHA256 == "" {
		if err := s.tagDigest(ctx, objKey, meta.Tags, sum); err != nil {
			// The object is complete and verified; only the shortcut for a
			// later comparison is missing (it then hashes the content).
			log.Warn("record sha256 tag", zap.Error(err))
		}
	}
	return obj, nil
}

// tagDigest adds the sha256 tag, keeping the record's tags.
func (s *Sink) tagDigest(ctx context.Context, objKey string, tags map[string]string, sum string) error {
	set := []types.Tag{{Key: aws.String(sink.MetaKeySHA256), Value: aws.String(sum)}}
	for k, v := range tags {
		set = append(set, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	_, err := s.client.PutObjectTagging(ctx, &s3.PutObjectTaggingInput{
		Bucket:  aws.String(s.opts.Bucket),
		Key:     aws.String(objKey),
		Tagging: &types.Tagging{TagSet: set},
	})
	return err
}

// uploader streams one multipart upload: the caller's goroutine reads parts
// in order (computing the whole-body digests), each part is uploaded by its
// own goroutine, at most UploadConcurrency at a time, and every part buffer
// comes from the sink's shared budget.
type uploader struct {
	s        *Sink
	objKey   string
	uploadID string
	ctx      context.Context
	cancel   context.CancelCauseFunc
	slots    chan struct{}
	wg       sync.WaitGroup

	mu       sync.Mutex
	parts    []types.CompletedPart
	partSums map[int32]string
}

// run reads body to its end, dispatching parts. It returns the total size,
// the hex SHA-256 and the full-object checksum of the body, or the error
// that stopped reading. first is full and was hashed by sha and full (the
// whole-body hashes, which run on); run owns first.
func (u *uploader) run(first *buffer, sha, full hash.Hash, body io.Reader, size int64) (total int64, sum, fullSum string, err error) {
	u.partSums = map[int32]string{}
	alg := u.s.opts.Checksum
	body = stream.ContextReader{Ctx: u.ctx, R: body} // stop reading once a part failed
	buf := first
	// The first part's hash is the whole-body hash so far: no second pass.
	partHash := full
	if partHash == nil {
		partHash = sha
	}
	var partNum int32
	for {
		if u.ctx.Err() != nil {
			u.s.pool.put(buf)
			return total, "", "", context.Cause(u.ctx)
		}
		n := buf.len()
		total += n
		if size >= 0 && total > size {
			u.s.pool.put(buf)
			return total, "", "", stream.CheckSize(size, total)
		}
		if n == 0 {
			u.s.pool.put(buf) // the body ended on a part boundary
		} else {
			partNum++
			if partNum > maxParts {
				u.s.pool.put(buf)
				return total, "", "", fmt.Errorf("body exceeds %d parts of %d bytes", maxParts, u.s.opts.PartSize)
			}
			check, payload := alg.encode(partHash)
			u.dispatch(partNum, buf, check, payload) // owns buf
		}
		if n < u.s.opts.PartSize {
			break // short read: the body has ended
		}
		// At most UploadConcurrency parts uploading plus this one filling.
		next, err := u.s.pool.get(u.ctx, u.s.opts.PartSize)
		if err != nil {
			return total, "", "", context.Cause(u.ctx)
		}
		partHash = alg.partHash()
		if _, err := next.fill(body, hashWriter(sha, full, partHash)); err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
			u.s.pool.put(next)
			if u.ctx.Err() != nil {
				// The read stopped because a part failed (or ctx ended):
				// that is the error, not the reader's "context canceled".
				return total, "", "", context.Cause(u.ctx)
			}
			return total, "", "", err
		}
		buf = next
	}
	sum = hex.EncodeToString(sha.Sum(nil))
	if full != nil {
		fullSum = base64.StdEncoding.EncodeToString(full.Sum(nil))
	}
	return total, sum, fullSum, nil
}

// dispatch uploads one part in the background, with its checksum (or, for
// NONE, its signed payload hash); it owns buf.
func (u *uploader) dispatch(num int32, buf *buffer, check, payload string) {
	select {
	case u.slots <- struct{}{}:
	case <-u.ctx.Done():
		u.s.pool.put(buf)
		return
	}
	u.wg.Go(func() {
		defer func() { <-u.slots }()
		defer u.s.pool.put(buf)
		in := &s3.UploadPartInput{
			Bucket:        aws.String(u.s.opts.Bucket),
			Key:           aws.String(u.objKey),
			UploadId:      aws.String(u.uploadID),
			PartNumber:    aws.Int32(num),
			Body:          buf.reader(),
			ContentLength: aws.Int64(buf.len()),
		}
		u.s.opts.Checksum.setPart(in, check)
		out, err := u.s.client.UploadPart(withBody(u.ctx, buf), in, u.s.signing(func() string { return payload }))
		if err != nil {
			u.cancel(fmt.Errorf("upload part %d: %w", num, err))
			return
		}
		part := types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag}
		u.s.opts.Checksum.setCompleted(&part, check)
		u.mu.Lock()
		u.parts = append(u.parts, part)
		u.partSums[num] = check
		u.mu.Unlock()
	})
}

// abortUpload aborts the multipart upload uploadID of objKey with a context
// of its own (the caller's may be cancelled), bounded by abortTimeout. An
// upload that is already gone is not an error.
func (s *Sink) abortUpload(ctx context.Context, objKey, uploadID string) error {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	_, err := s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(s.opts.Bucket), Key: aws.String(objKey), UploadId: aws.String(uploadID),
	})
	if err != nil && !isNoSuchUpload(err) {
		return err
	}
	return nil
}
