package auth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"sync"
	"testing"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/bayeuxhub/bayeuxhub/actors"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Keys shared by the tests, generated once.
var (
	rsaKey  = sync.OnceValue(func() *rsa.PrivateKey { return genRSA(2048) })
	rsaKey2 = sync.OnceValue(func() *rsa.PrivateKey { return genRSA(2048) })
	ecKey   = sync.OnceValue(func() *ecdsa.PrivateKey { return genEC(elliptic.P256()) })
	ecKey2  = sync.OnceValue(func() *ecdsa.PrivateKey { return genEC(elliptic.P256()) })
	ec384   = sync.OnceValue(func() *ecdsa.PrivateKey { return genEC(elliptic.P384()) })
)

var (
	secret  = []byte("0123456789abcdef0123456789abcdef") // 32 bytes
	secret2 = []byte("another secret, also 32 bytes!!!")
)

func genRSA(bits int) *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		panic(err)
	}
	return k
}

func genEC(c elliptic.Curve) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		panic(err)
	}
	return k
}

// signed signs claims with golang-jwt directly; header entries are added
// to the token's header.
func signed(t *testing.T, m jwt.SigningMethod, key any, claims jwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("sign: %v", err)
	}
	return s
}

func newJWT(t *testing.T, opts JWTOptions) *JWT {
	t.Helper()
	j, err := NewJWT(opts)
	if err != nil {
		t.Fatalf("NewJWT: %v", err)
	}
	t.Cleanup(j.Close)
	return j
}

func accept(t *testing.T, j *JWT, token string) *actors.Identity {
	t.Helper()
	id, err := j.Authenticate(context.Background(), token)
	if err != nil {
		t.Fatalf("Authenticate: %v", err)
	}
	if id == nil {
		t.Fatal("Authenticate: nil identity")
	}
	return id
}

func refuse(t *testing.T, j *JWT, token, want string) error {
	t.Helper()
	return refuseCtx(t, context.Background(), j, token, want)
}

func refuseCtx(t *testing.T, ctx context.Context, j *JWT, token, want string) error {
	t.Helper()
	id, err := j.Authenticate(ctx, token)
	if err == nil {
		t.Fatalf("Authenticate accepted the token (identity %+v); want %q", id, want)
	}
	if id != nil {
		t.Errorf("Authenticate returned an identity with its error: %+v", id)
	}
	if !errors.Is(err, ErrInvalidToken) {
		t.Errorf("error %q does not wrap ErrInvalidToken", err)
	}
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	return err
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
