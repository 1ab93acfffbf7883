package main

import (
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// fileFederation is the [federation] table: the FHIR listener other relays
// read this relay's hosted endpoints from, and how often this relay reads
// its peers' (README "Federation between relays over FHIR").
type fileFederation struct {
	FHIRListen       string `toml:"fhir_listen"`
	FHIRTokenFile    string `toml:"fhir_token_file"`
	PublishMX        string `toml:"publish_mx"`
	PeerSyncInterval string `toml:"peer_sync_interval"`
}

// federationConfig is [federation] checked.
type federationConfig struct {
	// FHIRListen serves only the read-only FHIR API, over TLS (the
	// server certificate), to peers holding the FHIR token. "": off.
	FHIRListen string `key:"federation.fhir_listen"`
	// FHIRTokenFile holds the bearer token peers present; required with
	// FHIRListen. The admin listener's /fhir/ accepts it too.
	FHIRTokenFile string `key:"federation.fhir_token_file"`
	// PublishMX is the next hop published on hosted endpoints
	// ("mx.example.nhs.uk:25"); "": server.hostname and the MX port.
	PublishMX        string        `key:"federation.publish_mx"`
	PeerSyncInterval time.Duration `key:"federation.peer_sync_interval"`
}

func (v *validator) federation(c *config, f fileFederation) {
	c.FHIRListen = f.FHIRListen
	v.listen("federation.fhir_listen", f.FHIRListen)
	if f.FHIRTokenFile != "" {
		c.FHIRTokenFile = v.file("federation.fhir_token_file", f.FHIRTokenFile, true)
		if c.FHIRTokenFile != "" {
			if tok, err := os.ReadFile(c.FHIRTokenFile); err == nil && len(strings.TrimSpace(string(tok))) < 16 {
				v.addf("federation.fhir_token_file", "the token is shorter than 16 characters")
			}
		}
	} else if f.FHIRListen != "" {
		v.addf("federation.fhir_token_file", "must be set with federation.fhir_listen: peers present this token")
	}
	if f.FHIRListen != "" && c.CertFile == "" {
		v.addf("federation.fhir_listen", "needs tls.cert_file and tls.key_file: the FHIR listener is HTTPS only")
	}
	if m := f.PublishMX; m != "" {
		host, port, err := net.SplitHostPort(m)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			v.addf("federation.publish_mx", "%q is not host:port (like mx.example.nhs.uk:25)", m)
		}
	}
	c.PublishMX = f.PublishMX
	c.PeerSyncInterval = v.duration("federation.peer_sync_interval", f.PeerSyncInterval, time.Second)
}
