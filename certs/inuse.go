package certs

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Roles of the certificates the server itself uses, as the expiry check
// names them (the role label of nhsrelay_certificate_days_left).
const (
	RoleTLSServer = "tls-server"         // tls.cert_file, as loaded (SIGHUP reloads it)
	RoleSMIMEOrg  = "smime-organisation" // smime.keys_dir/<ODS>.crt: signs outbound mail
	RoleSMIMEHost = "smime-endpoint"     // smime.keys_dir/<address>.crt: decrypts for a hosted endpoint
	ChainSuffix   = "-chain"             // an intermediate sent with one of the above
)

// inUse is one certificate the server presents or signs or decrypts with.
type inUse struct {
	role string
	file string
	cert *x509.Certificate
}

// inUseList lists the server's own certificates: the TLS certificate in
// use (from tlsCert, so a reloaded one counts) and every certificate in
// keysDir's *.crt files. A file that cannot be read or parsed is reported
// and skipped.
func inUseList(tlsCert func() *tls.Certificate, certFile, keysDir string) ([]inUse, []error) {
	var out []inUse
	var errs []error
	if c := tlsCert(); c != nil {
		for i, der := range c.Certificate {
			x, err := x509.ParseCertificate(der)
			if err != nil {
				errs = append(errs, fmt.Errorf("tls.cert_file %s: certificate %d: %w", certFile, i, err))
				continue
			}
			out = append(out, inUse{role: chainRole(RoleTLSServer, i), file: certFile, cert: x})
		}
	}
	entries, err := os.ReadDir(keysDir)
	if err != nil {
		return out, append(errs, fmt.Errorf("smime.keys_dir: %w", err))
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".crt")
		if !ok || !e.Type().IsRegular() {
			continue
		}
		role := RoleSMIMEHost
		if IsODSCode(name) {
			role = RoleSMIMEOrg
		}
		file := filepath.Join(keysDir, e.Name())
		data, err := os.ReadFile(file)
		if err != nil {
			errs = append(errs, fmt.Errorf("smime.keys_dir: %w", err))
			continue
		}
		chain, err := ParseCertificates(data)
		if err != nil || len(chain) == 0 {
			errs = append(errs, fmt.Errorf("smime.keys_dir: %s: no certificate (%v)", file, err))
			continue
		}
		for i, x := range chain {
			out = append(out, inUse{role: chainRole(role, i), file: file, cert: x})
		}
	}
	return out, errs
}

func chainRole(role string, i int) string {
	if i == 0 {
		return role
	}
	return role + ChainSuffix
}

// InUse reports on the server's own certificates at now: the TLS
// certificate in use (from tlsCert, so a reloaded one counts; certFile is
// only its name in reports) and every certificate in keysDir's *.crt files
// (S/MIME organisation and hosted endpoint pairs), each with its File and
// a Role above. A file that cannot be read or parsed is reported as an
// error naming its config key and skipped.
func InUse(tlsCert func() *tls.Certificate, certFile, keysDir string, now time.Time) ([]CertStatus, []error) {
	list, errs := inUseList(tlsCert, certFile, keysDir)
	out := make([]CertStatus, 0, len(list))
	for _, c := range list {
		s := Inspect(c.cert, now)
		s.File, s.Role = c.file, c.role
		out = append(out, s)
	}
	return out, errs
}
