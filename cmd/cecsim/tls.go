package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Files of --self-signed-dir.
const (
	caFile     = "ca.pem"
	caKeyFile  = "ca-key.pem"
	certFile   = "server.pem"
	keyFile    = "server-key.pem"
	certMargin = 24 * time.Hour
)

// ensureSelfSigned returns the server certificate and key files in dir,
// generating a CA and a server certificate (IP SAN 127.0.0.1 and ::1, DNS
// localhost) unless a usable pair is already there, so clients keep trusting
// dir/ca.pem across restarts.
func ensureSelfSigned(dir string, now time.Time) (string, string, error) {
	cert, key := filepath.Join(dir, certFile), filepath.Join(dir, keyFile)
	if usable(dir, now) {
		return cert, key, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", "", err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	caSerial, err := serial()
	if err != nil {
		return "", "", err
	}
	srvSerial, err := serial()
	if err != nil {
		return "", "", err
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          caSerial,
		Subject:               pkix.Name{CommonName: "cecsim test CA", Organization: []string{"cec-archiver"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(1, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return "", "", err
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	srvTmpl := &x509.Certificate{
		SerialNumber: srvSerial,
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"cec-archiver"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srvTmpl, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		return "", "", err
	}
	caKeyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return "", "", err
	}
	srvKeyDER, err := x509.MarshalECPrivateKey(srvKey)
	if err != nil {
		return "", "", err
	}
	// Keys first: ca.pem appears last, when everything it vouches for is in place.
	for _, f := range []struct {
		name, typ string
		der       []byte
		perm      os.FileMode
	}{
		{caKeyFile, "EC PRIVATE KEY", caKeyDER, 0o600},
		{keyFile, "EC PRIVATE KEY", srvKeyDER, 0o600},
		{certFile, "CERTIFICATE", srvDER, 0o644},
		{caFile, "CERTIFICATE", caDER, 0o644},
	} {
		data := pem.EncodeToMemory(&pem.Block{Type: f.typ, Bytes: f.der})
		if err := writeFileAtomic(filepath.Join(dir, f.name), data, f.perm); err != nil {
			return "", "", fmt.Errorf("write %s: %w", f.name, err)
		}
	}
	return cert, key, nil
}

// usable reports whether dir holds a server pair signed by dir/ca.pem, valid
// for 127.0.0.1 and localhost for at least another certMargin.
func usable(dir string, now time.Time) bool {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
	if err != nil {
		return false
	}
	caPEM, err := os.ReadFile(filepath.Join(dir, caFile))
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return false
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return false
	}
	for _, name := range []string{"127.0.0.1", "localhost"} {
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool, CurrentTime: now.Add(certMargin)}); err != nil {
			return false
		}
	}
	return true
}

func serial() (*big.Int, error) {
	return rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
}
