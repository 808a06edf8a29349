package s3

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyauth "github.com/aws/smithy-go/auth"
	smithyendpoints "github.com/aws/smithy-go/endpoints"
)

// TestCachedEndpoints: for custom endpoints and AWS, path and virtual-host
// style, several buckets and keys, the cache answers as the SDK does, the
// first time and from the cache, and a request changing its copy changes
// no other.
func TestCachedEndpoints(t *testing.T) {
	ctx := context.Background()
	sdk := s3.NewDefaultEndpointResolverV2()
	c := newCachedEndpoints(sdk)
	var params []s3.EndpointParameters
	for _, endpoint := range []*string{nil, aws.String("http://127.0.0.1:7070"), aws.String("https://obs.cn-north-4.myhuaweicloud.com/base")} {
		for _, pathStyle := range []bool{false, true} {
			for _, bucket := range []string{"archive", "archive-2"} {
				for _, key := range []*string{nil, aws.String("t/2026/12/01/a.wav"), aws.String("t/b.wav")} {
					params = append(params, s3.EndpointParameters{
						Bucket: aws.String(bucket), Region: aws.String("eu-west-1"), Endpoint: endpoint,
						ForcePathStyle: aws.Bool(pathStyle), Key: key,
						UseFIPS: aws.Bool(false), UseDualStack: aws.Bool(false), Accelerate: aws.Bool(false),
					})
				}
			}
		}
	}
	for round := range 2 {
		for _, p := range params {
			want, werr := sdk.ResolveEndpoint(ctx, p)
			got, gerr := c.ResolveEndpoint(ctx, p)
			name := fmt.Sprintf("round %d, endpoint %v, path style %v, bucket %s", round, aws.ToString(p.Endpoint), *p.ForcePathStyle, *p.Bucket)
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("%s: error %v, want %v", name, gerr, werr)
			}
			if werr != nil {
				continue
			}
			sameEndpoint(t, name, got, want)
		}
	}
	if n := len(c.m); n != len(params)/3 {
		t.Errorf("%d cached answers for %d parameters that differ by key only in threes", n, len(params))
	}
	// A request rewriting its copy's auth options leaves the cache alone,
	// also when many do at once (go test -race).
	p := params[len(params)-1]
	want, _ := sdk.ResolveEndpoint(ctx, p)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			e, err := c.ResolveEndpoint(ctx, p)
			if err != nil {
				t.Error(err)
				return
			}
			opts, _ := smithyauth.GetAuthOptions(&e.Properties)
			for _, o := range opts {
				o.SignerProperties.Set("changed", true)
			}
			e.Headers.Set("X-Changed", "1")
		})
	}
	wg.Wait()
	got, _ := c.ResolveEndpoint(ctx, p)
	sameEndpoint(t, "after requests changed their copies", got, want)
}

func sameEndpoint(t *testing.T, name string, got, want smithyendpoints.Endpoint) {
	t.Helper()
	if got.URI.String() != want.URI.String() {
		t.Errorf("%s: URI %s, want %s", name, got.URI.String(), want.URI.String())
	}
	if !reflect.DeepEqual(got.Headers, want.Headers) {
		t.Errorf("%s: headers %v, want %v", name, got.Headers, want.Headers)
	}
	gopts, _ := smithyauth.GetAuthOptions(&got.Properties)
	wopts, _ := smithyauth.GetAuthOptions(&want.Properties)
	if len(gopts) != len(wopts) {
		t.Fatalf("%s: %d auth options, want %d", name, len(gopts), len(wopts))
	}
	for i := range wopts {
		if gopts[i].SchemeID != wopts[i].SchemeID ||
			!reflect.DeepEqual(gopts[i].SignerProperties.Values(), wopts[i].SignerProperties.Values()) ||
			!reflect.DeepEqual(gopts[i].IdentityProperties.Values(), wopts[i].IdentityProperties.Values()) {
			t.Errorf("%s: auth option %d = %+v, want %+v", name, i, *gopts[i], *wopts[i])
		}
	}
	if len(got.Properties.Values()) != len(want.Properties.Values()) {
		t.Errorf("%s: %d properties, want %d", name, len(got.Properties.Values()), len(want.Properties.Values()))
	}
}
