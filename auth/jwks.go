package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
)

// JWK Set fetching bounds.
const (
	jwksFetchTimeout = 10 * time.Second // each fetch, whatever the client's timeout
	jwksMaxBytes     = 1 << 20          // largest JWK Set document read
	jwksRetryMin     = time.Second      // first retry after a failed fetch
	jwksRetryMax     = 5 * time.Minute  // longest retry interval
)

var (
	errRateLimited = errors.New("JWK Set fetched too recently")
	errClosed      = errors.New("verifier closed")
)

// jwksKey is a usable key of the JWK Set.
type jwksKey struct {
	kid string
	alg string // the JWK's "alg", or empty
	key crypto.PublicKey
}

// keySet is one fetched JWK Set, immutable.
type keySet struct{ keys []jwksKey }

// flight is one fetch in progress; err is set before done is closed.
type flight struct {
	done chan struct{}
	err  error
}

// jwksCache holds the JWK Set at a URL, fetched in the background (first
// at once, then every refreshEvery, sooner after a failure) and on demand
// for unknown key ids (at most once per unknownEvery). At most one fetch
// runs at a time; callers wanting a fetch join the one in progress.
type jwksCache struct {
	url, logURL  string
	client       *http.Client
	transport    *http.Transport // ours, to close its idle connections; nil for the caller's client
	refreshEvery time.Duration
	unknownEvery time.Duration
	log          *zerolog.Logger

	set atomic.Pointer[keySet] // nil until a fetch succeeded

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	mu           sync.Mutex
	closed       bool
	flight       *flight
	lastOnDemand time.Time
}

func newJWKSCache(opts JWTOptions) *jwksCache {
	c := &jwksCache{
		url:          opts.JWKSURL,
		logURL:       redactURL(opts.JWKSURL),
		client:       opts.HTTPClient,
		refreshEvery: opts.JWKSRefresh,
		unknownEvery: opts.JWKSUnknownKIDInterval,
		log:          opts.Logger,
	}
	if c.client == nil {
		c.client = &http.Client{Timeout: DefaultJWKSTimeout}
		if t, ok := http.DefaultTransport.(*http.Transport); ok {
			c.transport = t.Clone()
			c.client.Transport = c.transport
		}
	}
	if c.refreshEvery <= 0 {
		c.refreshEvery = DefaultJWKSRefresh
	}
	if c.unknownEvery <= 0 {
		c.unknownEvery = DefaultJWKSUnknownKIDInterval
	}
	if c.log == nil {
		nop := zerolog.Nop()
		c.log = &nop
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	first := c.begin() // started here, so that tokens arriving at once join it
	c.wg.Add(1)
	go c.run(first)
	return c
}

// run waits for the first fetch, then fetches the set periodically, until
// close.
func (c *jwksCache) run(f *flight) {
	defer c.wg.Done()
	retry := jwksRetryMin
	for {
		if f == nil {
			return
		}
		select {
		case <-f.done:
		case <-c.ctx.Done():
			return
		}
		wait := c.refreshEvery
		if f.err != nil {
			wait = min(retry, c.refreshEvery)
			retry = min(2*retry, jwksRetryMax)
		} else {
			retry = jwksRetryMin
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return
		}
		f = c.begin()
	}
}

// begin returns the fetch in progress, starting one if there is none; nil
// once closed.
func (c *jwksCache) begin() *flight {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.beginLocked()
}

func (c *jwksCache) beginLocked() *flight {
	if c.closed {
		return nil
	}
	if c.flight != nil {
		return c.flight
	}
	f := &flight{done: make(chan struct{})}
	c.flight = f
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		err := c.fetch()
		c.mu.Lock()
		f.err = err
		c.flight = nil
		c.mu.Unlock()
		close(f.done)
	}()
	return f
}

// refreshNow fetches the set for a token the cached set cannot verify:
// it joins the fetch in progress, or starts one unless the last on-demand
// fetch was less than unknownEvery ago. It returns when the fetch ends or
// ctx does, whichever is first (the fetch goes on for the others).
func (c *jwksCache) refreshNow(ctx context.Context) error {
	c.mu.Lock()
	f := c.flight
	if f == nil {
		if c.closed {
			c.mu.Unlock()
			return errClosed
		}
		now := time.Now()
		if !c.lastOnDemand.IsZero() && now.Sub(c.lastOnDemand) < c.unknownEvery {
			c.mu.Unlock()
			return errRateLimited
		}
		c.lastOnDemand = now
		f = c.beginLocked()
	}
	c.mu.Unlock()
	select {
	case <-f.done:
		return f.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fetched reports whether the set was ever fetched.
func (c *jwksCache) fetched() bool { return c.set.Load() != nil }

// byKID returns the keys with key id kid, fetching the set again (see
// refreshNow) when it has none; err says why such a fetch did not happen
// or failed.
func (c *jwksCache) byKID(ctx context.Context, kid string) ([]jwksKey, error) {
	if keys := c.set.Load().find(kid); len(keys) > 0 {
		return keys, nil
	}
	err := c.refreshNow(ctx)
	return c.set.Load().find(kid), err
}

// all returns every key of the set, first fetching it (see refreshNow)
// when it never was.
func (c *jwksCache) all(ctx context.Context) ([]jwksKey, error) {
	var err error
	if !c.fetched() {
		err = c.refreshNow(ctx)
	}
	if s := c.set.Load(); s != nil {
		return s.keys, err
	}
	return nil, err
}

func (s *keySet) find(kid string) []jwksKey {
	if s == nil {
		return nil
	}
	var out []jwksKey
	for _, k := range s.keys {
		if k.kid == kid {
			out = append(out, k)
		}
	}
	return out
}

// fitting returns the keys among ks that can verify algorithm alg: of the
// algorithm's key type (and curve), with no "alg" or that alg.
func fitting(ks []jwksKey, alg string, want algInfo) []jwt.VerificationKey {
	var out []jwt.VerificationKey
	for _, k := range ks {
		if k.alg != "" && k.alg != alg {
			continue
		}
		switch key := k.key.(type) {
		case *rsa.PublicKey:
			if want.kind == kindRSA {
				out = append(out, key)
			}
		case *ecdsa.PublicKey:
			if want.kind == kindEC && key.Curve.Params().BitSize == want.curve {
				out = append(out, key)
			}
		}
	}
	return out
}

// fetch gets, decodes and installs the set.
func (c *jwksCache) fetch() error {
	ctx, cancel := context.WithTimeout(c.ctx, jwksFetchTimeout)
	defer cancel()
	set, skipped, err := c.get(ctx)
	if err != nil {
		if c.ctx.Err() == nil {
			c.log.Warn().Str("jwks_url", c.logURL).Err(err).Msg("auth: cannot fetch the JWK Set")
		}
		return err
	}
	if skipped > 0 {
		c.log.Warn().Str("jwks_url", c.logURL).Int("skipped", skipped).Int("keys", len(set.keys)).
			Msg("auth: JWK Set has keys that cannot verify tokens (not RSA >= 2048 bits or ECDSA P-256/384/521 signature keys); skipped")
	}
	c.set.Store(set)
	c.log.Debug().Str("jwks_url", c.logURL).Int("keys", len(set.keys)).Msg("auth: JWK Set fetched")
	return nil
}

func (c *jwksCache) get(ctx context.Context) (*keySet, int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url, nil)
	if err != nil {
		return nil, 0, errors.New("bad JWK Set URL")
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		var ue *url.Error // its text has the whole URL, query included
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return nil, 0, fmt.Errorf("HTTP status %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, jwksMaxBytes+1))
	if err != nil {
		return nil, 0, fmt.Errorf("reading the JWK Set: %w", err)
	}
	if len(body) > jwksMaxBytes {
		return nil, 0, fmt.Errorf("the JWK Set is larger than %d bytes", jwksMaxBytes)
	}
	return parseJWKS(body)
}

// parseJWKS decodes a JWK Set document with jwkset, keeping the RSA and
// ECDSA public keys meant for signatures; it returns how many other keys
// it skipped.
func parseJWKS(body []byte) (*keySet, int, error) {
	var m jwkset.JWKSMarshal
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, 0, fmt.Errorf("not a JWK Set: %w", err)
	}
	if m.Keys == nil {
		return nil, 0, errors.New(`not a JWK Set: no "keys" array`)
	}
	set := &keySet{}
	skipped := 0
	for _, km := range m.Keys {
		k, ok := usableJWK(km)
		if !ok {
			skipped++
			continue
		}
		set.keys = append(set.keys, k)
	}
	return set, skipped, nil
}

func usableJWK(km jwkset.JWKMarshal) (jwksKey, bool) {
	if km.USE != "" && km.USE != jwkset.UseSig {
		return jwksKey{}, false
	}
	if len(km.KEYOPS) > 0 && !slices.Contains(km.KEYOPS, jwkset.KeyOpsVerify) {
		return jwksKey{}, false
	}
	if km.ALG != "" {
		if _, ok := supported[km.ALG.String()]; !ok {
			return jwksKey{}, false
		}
	}
	// Private false: only public key material is decoded ("oct" keys fail).
	j, err := jwkset.NewJWKFromMarshal(km, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return jwksKey{}, false
	}
	key, err := checkPublicKey(j.Key())
	if err != nil {
		return jwksKey{}, false
	}
	return jwksKey{kid: km.KID, alg: km.ALG.String(), key: key}, true
}

// close stops the background fetches and waits for them.
func (c *jwksCache) close() {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		if c.transport != nil {
			c.transport.CloseIdleConnections()
		}
	})
}
