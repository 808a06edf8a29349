package cecclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "cec-archiver test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// leaf issues a server certificate for the given SANs.
func (ca *testCA) leaf(t *testing.T, dns []string, ips []net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"}, // ignored since Go 1.15: only SANs count
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func tlsServer(t *testing.T, cert tls.Certificate, calls *atomic.Int32) *httptest.Server {
	t.Helper()
	h := tokenHandler(calls, 0, 3600)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body [4096]byte
		n, _ := r.Body.Read(body[:])
		h(w, r, body[:n], 1)
	}))
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // handshake failures are the point of the test
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

func TestClient_TLS(t *testing.T) {
	ca := newTestCA(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	ipCert := ca.leaf(t, nil, []net.IP{net.ParseIP("127.0.0.1")})
	dnsCert := ca.leaf(t, []string{"cec.example"}, nil)

	for _, c := range []struct {
		name    string
		cert    tls.Certificate
		mod     func(*Options)
		wantErr bool
	}{
		{"unknown CA refused", ipCert, func(o *Options) {}, true},
		{"CAFile accepted", ipCert, func(o *Options) { o.CAFile = caFile }, false},
		{"SAN mismatch refused", dnsCert, func(o *Options) { o.CAFile = caFile }, true},
		{"ServerName override accepted", dnsCert, func(o *Options) { o.CAFile = caFile; o.ServerName = "cec.example" }, false},
		{"wrong ServerName refused", ipCert, func(o *Options) { o.CAFile = caFile; o.ServerName = "cec.example" }, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := tlsServer(t, c.cert, &calls)
			cl := newTestClient(t, srv.URL, c.mod)
			tok, err := cl.GetToken(context.Background())
			if c.wantErr {
				if err == nil {
					t.Fatal("connected")
				}
				if !IsPermanent(err) {
					t.Errorf("a certificate failure must be permanent: %v (%v)", err, Classify(err))
				}
				if calls.Load() != 0 {
					t.Error("the request reached the handler")
				}
				return
			}
			if err != nil || !strings.HasPrefix(tok, testToken) {
				t.Fatalf("GetToken = %q, %v", tok, err)
			}
		})
	}

	t.Run("CAFile without certificates", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "empty.pem")
		os.WriteFile(empty, []byte("not a certificate\n"), 0o600)
		o := testOptions("https://127.0.0.1:1")
		o.CAFile = empty
		if _, err := New(o); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
			t.Fatalf("New = %v", err)
		}
	})
	t.Run("InsecureSkipVerify warns loudly", func(t *testing.T) {
		var calls atomic.Int32
		srv := tlsServer(t, ipCert, &calls)
		core, logs := observer.New(zap.WarnLevel)
		cl := newTestClient(t, srv.URL, func(o *Options) { o.InsecureSkipVerify = true; o.Logger = zap.New(core) })
		if logs.FilterMessageSnippet("InsecureSkipVerify").Len() != 1 {
			t.Errorf("warnings: %v", logs.All())
		}
		if _, err := cl.GetToken(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("TLS 1.2 minimum", func(t *testing.T) {
		srv := httptest.NewUnstartedServer(http.NotFoundHandler())
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{ipCert}, MaxVersion: tls.VersionTLS11}
		srv.Config.ErrorLog = log.New(io.Discard, "", 0)
		srv.StartTLS()
		defer srv.Close()
		cl := newTestClient(t, srv.URL, func(o *Options) { o.CAFile = caFile })
		if _, err := cl.GetToken(context.Background()); err == nil {
			t.Fatal("TLS 1.1 accepted")
		}
	})
}
