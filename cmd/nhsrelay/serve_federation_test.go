package main

import "testing"

func TestPublishedMX(t *testing.T) {
	t.Parallel()
	tests := []struct {
		publish, hostname, bound, want string
	}{
		{"mx.a.nhs.example:25", "relay", "0.0.0.0:25", "mx.a.nhs.example:25"}, // set: as set
		{"", "relay.a.nhs.example", "[::]:25", "relay.a.nhs.example:25"},      // the host name and the bound port
		{"", "relay.a.nhs.example", "10.0.0.5:2525", "relay.a.nhs.example:2525"},
		{"", "localhost", "127.0.0.1:40123", "127.0.0.1:40123"}, // loopback: the bound address
		{"", "relay.a.nhs.example", "", ""},                     // no MX listener: nothing published
	}
	for _, tc := range tests {
		c := &config{Hostname: tc.hostname}
		c.PublishMX = tc.publish
		if got := publishedMX(c, tc.bound); got != tc.want {
			t.Errorf("publishedMX(publish %q, hostname %q, bound %q) = %q, want %q", tc.publish, tc.hostname, tc.bound, got, tc.want)
		}
	}
}
