package certs

import (
	"cmp"
	"crypto/x509"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Hosted endpoints' key pairs in smime.keys_dir, several per address for a
// key rollover: the flat pair <address>.crt/.key, and any number of pairs
// <address>/<name>.crt/.key in a folder named after the address (a renewal
// is added there, beside the old pair). The newest valid pair (the latest
// notBefore among those valid now) is current: its certificate is the one
// published in the directory, so senders encrypt to it. The others still
// decrypt mail sent to them until their files are removed.

// EndpointKeyFile is one hosted endpoint pair's certificate file.
type EndpointKeyFile struct {
	Address string // lower case
	Name    string // keys_dir-relative name without .crt: "<address>" or "<address>/<name>"
	File    string // the .crt path
	Cert    *x509.Certificate
	Current bool // the newest valid pair of its address
}

// EndpointKeyNames lists the keys_dir names (without .crt) of the pairs
// for addr, flat pair first; it reads names only.
func EndpointKeyNames(keysDir, addr string) []string {
	base := strings.ToLower(addr)
	if base == "" || base[0] == '.' || strings.ContainsAny(base, "/\\\x00") {
		return nil
	}
	var names []string
	if fi, err := os.Stat(filepath.Join(keysDir, base+".crt")); err == nil && fi.Mode().IsRegular() {
		names = append(names, base)
	}
	entries, _ := os.ReadDir(filepath.Join(keysDir, base))
	for _, e := range entries {
		n, ok := strings.CutSuffix(e.Name(), ".crt")
		if ok && e.Type().IsRegular() && n != "" && n[0] != '.' {
			names = append(names, base+"/"+n)
		}
	}
	return names
}

// NewerFirst orders certificates valid at now first, the latest notBefore
// first; ties by serial, so the order is stable. The first is current.
func NewerFirst(a, b *x509.Certificate, now time.Time) int {
	valid := func(c *x509.Certificate) bool { return !now.Before(c.NotBefore) && !now.After(c.NotAfter) }
	if va, vb := valid(a), valid(b); va != vb {
		if va {
			return -1
		}
		return 1
	}
	return cmp.Or(b.NotBefore.Compare(a.NotBefore), b.SerialNumber.Cmp(a.SerialNumber))
}

// EndpointKeys reads the certificate of every hosted endpoint pair in
// keysDir and marks the current one of each address, sorted by address,
// current first. Files that cannot be read or parsed are left out (InUse
// reports them).
func EndpointKeys(keysDir string, now time.Time) []EndpointKeyFile {
	entries, _ := os.ReadDir(keysDir)
	seen := map[string]bool{}
	var out []EndpointKeyFile
	for _, e := range entries {
		addr := strings.ToLower(strings.TrimSuffix(e.Name(), ".crt"))
		if !strings.Contains(addr, "@") || seen[addr] || (!e.IsDir() && !strings.HasSuffix(e.Name(), ".crt")) {
			continue
		}
		seen[addr] = true
		var keys []EndpointKeyFile
		for _, n := range EndpointKeyNames(keysDir, addr) {
			file := filepath.Join(keysDir, filepath.FromSlash(n)+".crt")
			data, err := os.ReadFile(file)
			if err != nil {
				continue
			}
			chain, err := ParseCertificates(data)
			if err != nil || len(chain) == 0 {
				continue
			}
			keys = append(keys, EndpointKeyFile{Address: addr, Name: n, File: file, Cert: chain[0]})
		}
		slices.SortStableFunc(keys, func(a, b EndpointKeyFile) int { return NewerFirst(a.Cert, b.Cert, now) })
		if len(keys) > 0 {
			keys[0].Current = true
		}
		out = append(out, keys...)
	}
	slices.SortStableFunc(out, func(a, b EndpointKeyFile) int { return strings.Compare(a.Address, b.Address) })
	return out
}
