package main

import (
	"strings"
	"testing"

	"nhsrelay/directory/directorytest"
)

// TestRecipientHandlers: the configured challenge address (after config
// defaults) is taken by the challenge-reply handler, and nothing else is.
func TestRecipientHandlers(t *testing.T) {
	t.Parallel()
	cfg, err := loadConfig(writeConfigDir(t, exampleConfig))
	if err != nil {
		t.Fatalf("loadConfig(example): %v", err)
	}
	dir := directorytest.New(t)
	hs, err := recipientHandlers(cfg, dir)
	if err != nil {
		t.Fatalf("recipientHandlers: %v", err)
	}
	if len(hs) != 1 || !hs[0].Accepts(strings.ToUpper(cfg.ChallengeFrom)) || hs[0].Accepts("gp.a81001@nhs.example") {
		t.Errorf("handlers %v for challenge_from %q: want one that takes only it", hs, cfg.ChallengeFrom)
	}
	cfg.ChallengeFrom = ""
	if hs, err := recipientHandlers(cfg, dir); err != nil || len(hs) != 0 {
		t.Errorf("recipientHandlers without challenge_from = %v, %v; want none", hs, err)
	}
	cfg.ChallengeFrom = "not an address"
	if _, err := recipientHandlers(cfg, dir); err == nil || !strings.Contains(err.Error(), "directory.challenge_from") {
		t.Errorf("recipientHandlers(bad address) error = %v, want it to name directory.challenge_from", err)
	}
}
