package cecclient

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/cec-archiver/cec-archiver/internal/cecwire"
)

const (
	// defaultTokenTTL applies when gettoken returns no expireTime (cec-api.md §2).
	defaultTokenTTL = 3600 * time.Second
	// tokenRefreshShare: the token is refreshed after 80 % of its lifetime.
	tokenRefreshShare = 0.8
	// tokenFetchTimeout bounds one shared refresh, which outlives the context
	// of the caller that started it.
	tokenFetchTimeout = 2 * time.Minute
)

// tokenCache holds the OIFDE token; concurrent callers share one refresh.
type tokenCache struct {
	mu        sync.Mutex
	token     string
	refreshAt time.Time
	expiresAt time.Time
	flight    *tokenFlight
}

type tokenFlight struct {
	done  chan struct{}
	token string
	err   error
}

// GetToken returns the OIFDE auth token (C3, cec-api.md §2). The token is
// cached and refreshed once 80 % of its expireTime has passed; concurrent
// callers share one gettoken request. If a refresh fails while the old token
// has not expired yet, the old token is returned.
func (c *Client) GetToken(ctx context.Context) (string, error) {
	if c.oifde == nil {
		return "", fmt.Errorf("cec: get token: %w: %s", ErrNotConfigured, ServiceOIFDE)
	}
	c.tok.mu.Lock()
	if c.tok.token != "" && c.o.Now().Before(c.tok.refreshAt) {
		t := c.tok.token
		c.tok.mu.Unlock()
		return t, nil
	}
	f := c.tok.flight
	if f == nil {
		f = &tokenFlight{done: make(chan struct{})}
		c.tok.flight = f
		go c.refreshToken(context.WithoutCancel(ctx), f)
	}
	c.tok.mu.Unlock()
	select {
	case <-f.done:
		return f.token, f.err
	case <-ctx.Done():
		return "", fmt.Errorf("cec: get token: %w", ctx.Err())
	}
}

func (c *Client) refreshToken(ctx context.Context, f *tokenFlight) {
	ctx, cancel := context.WithTimeout(ctx, tokenFetchTimeout)
	defer cancel()
	tok, ttl, err := c.fetchToken(ctx)
	now := c.o.Now()
	c.tok.mu.Lock()
	switch {
	case err == nil:
		c.tok.token = tok
		c.tok.refreshAt = now.Add(time.Duration(float64(ttl) * tokenRefreshShare))
		c.tok.expiresAt = now.Add(ttl)
		f.token = tok
	case c.tok.token != "" && now.Before(c.tok.expiresAt):
		c.log.Warn("cec: token refresh failed; using the current token until it expires",
			zap.Time("expires", c.tok.expiresAt), zap.Error(err))
		f.token = c.tok.token
	default:
		f.err = err
	}
	c.tok.flight = nil
	c.tok.mu.Unlock()
	close(f.done)
}

// invalidateToken forgets tok after OIFDE called it invalid (900001), unless
// another caller has already replaced it.
func (c *Client) invalidateToken(tok string) {
	c.tok.mu.Lock()
	defer c.tok.mu.Unlock()
	if c.tok.token == tok {
		c.tok.token = ""
		c.tok.expiresAt = time.Time{}
	}
}

// tokenAnswer is gettoken's answer, decoded leniently (numbers or strings).
type tokenAnswer struct {
	ErrorCode  cecwire.FlexString `json:"errorCode"`
	ErrorMsg   string             `json:"errorMsg"`
	ErrorMsg2  string             `json:"errorMessage"`
	AuthToken  string             `json:"authToken"`
	ExpireTime cecwire.FlexInt64  `json:"expireTime"`
}

func (c *Client) fetchToken(ctx context.Context) (string, time.Duration, error) {
	rq, err := c.newRequest(ServiceOIFDE, "get token", "", cecwire.PathGetToken, nil,
		cecwire.GetTokenRequest{AppKey: c.o.TenantID, AppSecret: c.o.APIPassword})
	if err != nil {
		return "", 0, err
	}
	var tok string
	var ttl time.Duration
	err = c.do(ctx, rq, func(resp *http.Response) error {
		b, err := readJSON(resp.Body, c.o.MaxJSONBytes)
		if err != nil {
			return err
		}
		var a tokenAnswer
		if err := json.Unmarshal(b, &a); err != nil {
			return decodeErr("answer", err)
		}
		if a.ErrorCode != "" && a.ErrorCode != "0" {
			return &APIError{Service: ServiceOIFDE, Op: rq.op, HTTPStatus: resp.StatusCode,
				ResultCode: string(a.ErrorCode), Desc: firstNonEmpty(a.ErrorMsg, a.ErrorMsg2)}
		}
		if a.AuthToken == "" || !validHeaderValue(a.AuthToken) {
			return &APIError{Service: ServiceOIFDE, Op: rq.op, HTTPStatus: resp.StatusCode, Desc: "no usable authToken in the answer"}
		}
		tok = a.AuthToken
		ttl = time.Duration(a.ExpireTime) * time.Second
		if a.ExpireTime <= 0 || a.ExpireTime > 7*24*3600 {
			ttl = defaultTokenTTL
		}
		return nil
	})
	return tok, ttl, err
}
