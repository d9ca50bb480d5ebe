package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func selfSigned(t *testing.T, priv any, pub any) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "issuer"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	return must(der, err)
}

func TestLoadPublicKeyPEM(t *testing.T) {
	t.Parallel()
	rsaPub, ecPub := &rsaKey().PublicKey, &ecKey().PublicKey
	ecParams := "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
	good := []struct {
		name string
		pem  []byte
		want any
	}{
		{"PKIX RSA", pemBlock("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(rsaPub))), rsaPub},
		{"PKIX ECDSA", pemBlock("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(ecPub))), ecPub},
		{"PKCS#1", pemBlock("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(rsaPub)), rsaPub},
		{"certificate RSA", pemBlock("CERTIFICATE", selfSigned(t, rsaKey(), rsaPub)), rsaPub},
		{"certificate ECDSA", pemBlock("CERTIFICATE", selfSigned(t, ecKey(), ecPub)), ecPub},
		{"after EC PARAMETERS and text", append([]byte("a comment\n"+ecParams),
			pemBlock("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(ecPub)))...), ecPub},
	}
	for _, c := range good {
		key, err := LoadPublicKeyPEM(c.pem)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		eq, ok := key.(interface{ Equal(x crypto.PublicKey) bool })
		if !ok || !eq.Equal(c.want) {
			t.Errorf("%s: got another key %T", c.name, key)
		}
	}

	small := genRSA(1024)
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	bad := []struct {
		name, want string
		pem        []byte
	}{
		{"garbage", "no public key", []byte("not a PEM file")},
		{"empty", "no public key", nil},
		{"corrupt PKIX", "PEM PUBLIC KEY", pemBlock("PUBLIC KEY", []byte("junk"))},
		{"corrupt certificate", "PEM CERTIFICATE", pemBlock("CERTIFICATE", []byte("junk"))},
		{"PKCS#8 private key", "private key", pemBlock("PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(rsaKey())))},
		{"PKCS#1 private key", "private key", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey()))},
		{"SEC1 private key", "private key", pemBlock("EC PRIVATE KEY", must(x509.MarshalECPrivateKey(ecKey())))},
		{"1024-bit RSA", "1024 bits", pemBlock("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(&small.PublicKey)))},
		{"1024-bit PKCS#1", "1024 bits", pemBlock("RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&small.PublicKey))},
		{"Ed25519", "unsupported public key type", pemBlock("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(edPriv.Public())))},
	}
	for _, c := range bad {
		key, err := LoadPublicKeyPEM(c.pem)
		if err == nil {
			t.Errorf("%s: got %T, want an error", c.name, key)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want it to contain %q", c.name, err, c.want)
		}
	}
}

func TestLoadPublicKeyFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "pub.pem")
	if err := os.WriteFile(path, pemBlock("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(&ecKey().PublicKey))), 0o600); err != nil {
		t.Fatal(err)
	}
	key, err := LoadPublicKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !key.(*ecdsa.PublicKey).Equal(&ecKey().PublicKey) {
		t.Error("wrong key")
	}
	if _, err := LoadPublicKeyFile(filepath.Join(dir, "missing.pem")); err == nil || !strings.Contains(err.Error(), "missing.pem") {
		t.Errorf("missing file: error %v", err)
	}
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPublicKeyFile(garbage); err == nil || !strings.Contains(err.Error(), "garbage.pem") {
		t.Errorf("garbage file: error %v", err)
	}
}

func TestLoadPrivateKeyPEM(t *testing.T) {
	t.Parallel()
	ecParams := "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n"
	good := []struct {
		name string
		pem  []byte
		want any
	}{
		{"PKCS#8 RSA", pemBlock("PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(rsaKey()))), rsaKey()},
		{"PKCS#8 ECDSA", pemBlock("PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(ecKey()))), ecKey()},
		{"PKCS#1", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey())), rsaKey()},
		{"SEC1", pemBlock("EC PRIVATE KEY", must(x509.MarshalECPrivateKey(ecKey()))), ecKey()},
		{"SEC1 after EC PARAMETERS", append([]byte(ecParams), pemBlock("EC PRIVATE KEY", must(x509.MarshalECPrivateKey(ecKey())))...), ecKey()},
	}
	for _, c := range good {
		key, err := LoadPrivateKeyPEM(c.pem)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		eq, ok := key.(interface {
			Equal(x crypto.PrivateKey) bool
		})
		if !ok || !eq.Equal(c.want) {
			t.Errorf("%s: got another key %T", c.name, key)
		}
	}
	_, edPriv, _ := ed25519.GenerateKey(rand.Reader)
	encrypted := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Headers: map[string]string{
		"Proc-Type": "4,ENCRYPTED", "DEK-Info": "AES-256-CBC,00000000000000000000000000000000"}, Bytes: []byte("junk")})
	bad := []struct {
		name, want string
		pem        []byte
	}{
		{"garbage", "no private key", []byte("garbage")},
		{"public key", "not a private key", pemBlock("PUBLIC KEY", must(x509.MarshalPKIXPublicKey(&rsaKey().PublicKey)))},
		{"certificate", "not a private key", pemBlock("CERTIFICATE", selfSigned(t, ecKey(), &ecKey().PublicKey))},
		{"encrypted", "encrypted", encrypted},
		{"PKCS#8 encrypted", "encrypted", pemBlock("ENCRYPTED PRIVATE KEY", []byte("junk"))},
		{"corrupt", "PEM EC PRIVATE KEY", pemBlock("EC PRIVATE KEY", []byte("junk"))},
		{"1024-bit RSA", "1024 bits", pemBlock("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(genRSA(1024)))},
		{"Ed25519", "unsupported private key type", pemBlock("PRIVATE KEY", must(x509.MarshalPKCS8PrivateKey(edPriv)))},
	}
	for _, c := range bad {
		key, err := LoadPrivateKeyPEM(c.pem)
		if err == nil {
			t.Errorf("%s: got %T, want an error", c.name, key)
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q, want it to contain %q", c.name, err, c.want)
		}
	}
}
