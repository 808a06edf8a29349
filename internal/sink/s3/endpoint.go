package s3

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyauth "github.com/aws/smithy-go/auth"
	smithyendpoints "github.com/aws/smithy-go/endpoints"
)

// cachedEndpoints remembers the SDK's endpoint resolutions.
//
// The SDK resolves the endpoint twice per request (for the auth scheme,
// then for the request), each through resolveResult, a generated function
// whose stack frame is so large that the calling goroutine's stack grows,
// copy by copy, on nearly every request: 8 % of the archiver's CPU on 8 KiB
// recordings. The answer depends only on the parameters, which for one sink
// differ by bucket at most, so it is resolved once per distinct parameters.
//
// The parameters Key, Prefix and CopySource are left out of the cache key:
// the rules of the S3 module this is built with do not read them (they are
// declared for operations scoped to a key; grep evalCondition in its
// endpoints.go), and with them every object would be a new entry.
// TestCachedEndpoints compares every answer with the SDK's own.
type cachedEndpoints struct {
	next s3.EndpointResolverV2

	mu sync.Mutex
	m  map[string]smithyendpoints.Endpoint
}

// maxCachedEndpoints bounds the cache: past it, answers are not kept.
const maxCachedEndpoints = 64

func newCachedEndpoints(next s3.EndpointResolverV2) *cachedEndpoints {
	return &cachedEndpoints{next: next, m: map[string]smithyendpoints.Endpoint{}}
}

func (c *cachedEndpoints) ResolveEndpoint(ctx context.Context, p s3.EndpointParameters) (smithyendpoints.Endpoint, error) {
	k := p
	k.Key, k.Prefix, k.CopySource = nil, nil, nil
	b, err := json.Marshal(k) // pointers by their values
	if err != nil {
		return c.next.ResolveEndpoint(ctx, p)
	}
	key := string(b)
	c.mu.Lock()
	e, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return cloneEndpoint(e), nil
	}
	e, err = c.next.ResolveEndpoint(ctx, p)
	if err != nil {
		return e, err
	}
	c.mu.Lock()
	if len(c.m) < maxCachedEndpoints {
		c.m[key] = cloneEndpoint(e)
	}
	c.mu.Unlock()
	return e, nil
}

// cloneEndpoint copies e deeply enough for a request to change its copy:
// the SDK rewrites the properties of the auth options it finds in an
// endpoint (rebaseProps), in place.
func cloneEndpoint(e smithyendpoints.Endpoint) smithyendpoints.Endpoint {
	out := smithyendpoints.Endpoint{URI: e.URI, Headers: e.Headers.Clone()}
	out.Properties.SetAll(&e.Properties)
	if opts, ok := smithyauth.GetAuthOptions(&e.Properties); ok {
		cp := make([]*smithyauth.Option, len(opts))
		for i, o := range opts {
			c := *o
			c.IdentityProperties, c.SignerProperties = smithy.Properties{}, smithy.Properties{}
			c.IdentityProperties.SetAll(&o.IdentityProperties)
			c.SignerProperties.SetAll(&o.SignerProperties)
			cp[i] = &c
		}
		smithyauth.SetAuthOptions(&out.Properties, cp)
	}
	return out
}
