package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// LoadPublicKeyPEM returns the first public key in pemData: a PKIX
// "PUBLIC KEY", a PKCS#1 "RSA PUBLIC KEY", or the key of an X.509
// "CERTIFICATE" (the first one, for a chain; the certificate itself is not
// verified). Blocks of other types before it, such as "EC PARAMETERS", are
// skipped; a private key is an error. The key must be RSA of at least
// MinRSAKeyBits bits, or ECDSA on P-256, P-384 or P-521.
func LoadPublicKeyPEM(pemData []byte) (crypto.PublicKey, error) {
	rest := pemData
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("auth: no public key or certificate in the PEM data")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PUBLIC KEY":
			key, err = x509.ParsePKIXPublicKey(block.Bytes)
		case "RSA PUBLIC KEY":
			key, err = x509.ParsePKCS1PublicKey(block.Bytes)
		case "CERTIFICATE":
			var cert *x509.Certificate
			if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
				key = cert.PublicKey
			}
		case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "OPENSSH PRIVATE KEY":
			return nil, fmt.Errorf("auth: the PEM data holds a private key (%s), not a public key", block.Type)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("auth: PEM %s: %w", block.Type, err)
		}
		return checkPublicKey(key)
	}
}

// LoadPublicKeyFile reads a file and returns its key, as LoadPublicKeyPEM.
func LoadPublicKeyFile(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("auth: %w", err)
	}
	key, err := LoadPublicKeyPEM(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return key, nil
}

// LoadPrivateKeyPEM returns the first private key in pemData, for Mint: a
// PKCS#8 "PRIVATE KEY", a PKCS#1 "RSA PRIVATE KEY" or a SEC1 "EC PRIVATE
// KEY" (unencrypted). Blocks of other types before it, such as "EC
// PARAMETERS", are skipped. The key must be RSA of at least MinRSAKeyBits
// bits, or ECDSA on P-256, P-384 or P-521; it is an *rsa.PrivateKey or an
// *ecdsa.PrivateKey.
func LoadPrivateKeyPEM(pemData []byte) (crypto.Signer, error) {
	rest := pemData
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("auth: no private key in the PEM data")
		}
		if _, encrypted := block.Headers["DEK-Info"]; encrypted || block.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("auth: the private key is encrypted; decrypt it first")
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		case "PUBLIC KEY", "RSA PUBLIC KEY", "CERTIFICATE":
			return nil, fmt.Errorf("auth: the PEM data holds a %s, not a private key", block.Type)
		default:
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("auth: PEM %s: %w", block.Type, err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			if _, err := checkPublicKey(&k.PublicKey); err != nil {
				return nil, err
			}
			return k, nil
		case *ecdsa.PrivateKey:
			if _, err := checkPublicKey(&k.PublicKey); err != nil {
				return nil, err
			}
			return k, nil
		}
		return nil, fmt.Errorf("auth: unsupported private key type %T (want RSA or ECDSA)", key)
	}
}

// checkPublicKey returns key if it is one the package verifies with: an
// *rsa.PublicKey of at least MinRSAKeyBits bits, or an *ecdsa.PublicKey
// on P-256, P-384 or P-521.
func checkPublicKey(key any) (crypto.PublicKey, error) {
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return nil, errors.New("auth: empty RSA public key")
		}
		if bits := k.N.BitLen(); bits < MinRSAKeyBits {
			return nil, fmt.Errorf("auth: the RSA key has %d bits; at least %d are needed", bits, MinRSAKeyBits)
		}
		return k, nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return nil, errors.New("auth: empty ECDSA public key")
		}
		switch k.Curve {
		case elliptic.P256(), elliptic.P384(), elliptic.P521():
		default:
			return nil, fmt.Errorf("auth: the ECDSA curve %s is not supported (want P-256, P-384 or P-521)", k.Curve.Params().Name)
		}
		if _, err := k.Bytes(); err != nil { // not a point of the curve
			return nil, fmt.Errorf("auth: invalid ECDSA public key: %w", err)
		}
		return k, nil
	case nil:
		return nil, errors.New("auth: nil key")
	}
	return nil, fmt.Errorf("auth: unsupported public key type %T (want *rsa.PublicKey or *ecdsa.PublicKey)", key)
}
