package s3

import (
	"context"
	"fmt"
	"io"
	"iter"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/sink"
)

var _ sink.Reader = (*Sink)(nil)

// listPageSize is the MaxKeys of each ListObjectsV2 page (S3's maximum).
const listPageSize = 1000

// List implements sink.Reader with ListObjectsV2 under Prefix/prefix, one
// page (at most 1000 keys) in memory at a time. S3 lists keys in UTF-8
// binary order, which is the order of the sink's keys once Prefix is
// removed.
//
// Object.SHA256 is always empty: a listing does not carry user metadata or
// tags, and reading them would cost a HEAD (and a GetObjectTagging) per
// object. Callers that need the recorded digest Stat the key. Keys that end
// with "/" are folder markers some consoles create, not objects: left out.
func (s *Sink) List(ctx context.Context, prefix string) iter.Seq2[sink.Object, error] {
	return func(yield func(sink.Object, error) bool) {
		if err := sink.ValidatePrefix(prefix); err != nil {
			yield(sink.Object{}, fmt.Errorf("s3: list %s: %w", prefix, err))
			return
		}
		strip := ""
		if s.opts.Prefix != "" {
			strip = s.opts.Prefix + "/"
		}
		p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
			Bucket:  aws.String(s.opts.Bucket),
			Prefix:  aws.String(strip + prefix),
			MaxKeys: aws.Int32(listPageSize),
		})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				yield(sink.Object{}, fmt.Errorf("s3: list %s: %w", prefix, classify(err)))
				return
			}
			for _, o := range page.Contents {
				full := aws.ToString(o.Key)
				key, ok := strings.CutPrefix(full, strip)
				if !ok || key == "" || strings.HasPrefix(key, sink.ReservedPrefix) || strings.HasSuffix(key, "/") {
					continue
				}
				obj := sink.Object{Key: key, Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified)}
				if !yield(obj, nil) {
					return
				}
			}
		}
	}
}

// Open implements sink.Reader with GetObject. SHA256 is the "sha256"
// metadata, else the "sha256" tag (one GetObjectTagging, as Stat does), else
// empty. The SDK does not validate the store's checksum on the way; callers
// hash what they read.
func (s *Sink) Open(ctx context.Context, key string) (io.ReadCloser, sink.Object, error) {
	if err := sink.ValidateKey(key); err != nil {
		return nil, sink.Object{}, fmt.Errorf("s3: open %s: %w", key, err)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.opts.Bucket),
		Key:    aws.String(s.ObjectKey(key)),
	})
	if err != nil {
		if isNotFound(err) {
			return nil, sink.Object{}, fmt.Errorf("s3: open %s: %w", key, sink.ErrNotFound)
		}
		return nil, sink.Object{}, fmt.Errorf("s3: open %s: %w", key, classify(err))
	}
	etag := strings.Trim(aws.ToString(out.ETag), `"`)
	obj := sink.Object{
		Key:       key,
		Size:      aws.ToInt64(out.ContentLength),
		SHA256:    out.Metadata[sink.MetaKeySHA256],
		VersionID: aws.ToString(out.VersionId),
		Multipart: strings.Contains(etag, "-") || aws.ToInt32(out.PartsCount) > 1,
		Modified:  aws.ToTime(out.LastModified),
		Metadata:  out.Metadata,
	}
	if obj.SHA256 == "" {
		tags, err := s.tags(ctx, key)
		if err != nil {
			s.log.Debug("cannot read tags", zap.String("key", key), zap.Error(err))
		}
		obj.Tags = tags
		obj.SHA256 = tags[sink.MetaKeySHA256]
	}
	return out.Body, obj, nil
}
