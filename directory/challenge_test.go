package directory_test

import (
	"bytes"
	"errors"
	"net/mail"
	"strings"
	"testing"
	"time"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

func TestChallengeEndToEnd(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, directorytest.Pending("gp.a81001@nhs.example"), directorytest.Pending("trust.nhs.example"))
	ctx := admin(t)
	e := mustLookup(t, fx.d, "gp.a81001@nhs.example")
	if err := fx.d.StartChallenge(ctx, e.ID); err != nil {
		t.Fatalf("StartChallenge: %v", err)
	}
	sent := fx.mailer.Sent()
	if len(sent) != 1 || sent[0].From != "directory@relay.nhs.example" || strings.Join(sent[0].To, ",") != "gp.a81001@nhs.example" {
		t.Fatalf("sent = %+v, want one mail from directory@relay.nhs.example to gp.a81001@nhs.example", sent)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(sent[0].Data))
	if err != nil {
		t.Fatalf("challenge mail does not parse (RFC 5322): %v", err)
	}
	if msg.Header.Get("Auto-Submitted") != "auto-generated" || msg.Header.Get("Message-Id") == "" || msg.Header.Get("Date") == "" {
		t.Errorf("challenge headers = %v", msg.Header)
	}
	code := directorytest.Code(sent[0])
	if len(code) != 11 {
		t.Fatalf("code %q from mail, want XXXXX-XXXXX", code)
	}
	// The code is stored hashed only.
	snap, err := fx.store.Load(ctx)
	if err != nil || len(snap.Challenges) != 1 || strings.Contains(snap.Challenges[0].CodeHash, code) ||
		!snap.Challenges[0].Expires.Equal(t0.Add(72*time.Hour)) {
		t.Fatalf("stored challenges = %+v, %v", snap.Challenges, err)
	}
	hasEvent(t, fx.audit, "endpoint.challenge.sent", e.Address, "ok")

	if err := fx.d.ConfirmChallenge(ctx, e.ID, "AAAAA-AAAAA"); !errors.Is(err, directory.ErrWrongCode) || !strings.Contains(err.Error(), "4 attempts left") {
		t.Fatalf("ConfirmChallenge(wrong) = %v, want ErrWrongCode, 4 attempts left", err)
	}
	hasEvent(t, fx.audit, "endpoint.challenge.confirm", e.Address, "refused")
	fx.clock.Advance(time.Hour)
	// Typed back in lower case with spaces: still the code.
	typed := strings.ToLower(strings.ReplaceAll(code, "-", " "))
	if err := fx.d.ConfirmChallenge(ctx, e.ID, typed); err != nil {
		t.Fatalf("ConfirmChallenge(%q): %v", typed, err)
	}
	got, err := fx.d.CheckRecipient(ctx, e.Address)
	at := t0.Add(time.Hour)
	if err != nil || got.Verification.Method != "challenge" || got.Verification.By != "alice" ||
		!got.Verification.At.Equal(at) || !got.Verification.Expires.Equal(at.Add(directory.DefaultReverifyAfter)) {
		t.Fatalf("after confirm: %+v, %v", got.Verification, err)
	}
	hasEvent(t, fx.audit, "endpoint.verified", e.Address, "ok")
	// One use only.
	if err := fx.d.ConfirmChallenge(ctx, e.ID, code); !errors.Is(err, directory.ErrNoChallenge) {
		t.Fatalf("ConfirmChallenge(used code) = %v, want ErrNoChallenge", err)
	}

	// A whole-domain endpoint's code goes to its postmaster (RFC 5321 §4.5.1).
	dom := mustLookup(t, fx.d, "trust.nhs.example")
	if err := fx.d.StartChallenge(ctx, dom.ID); err != nil {
		t.Fatalf("StartChallenge(domain): %v", err)
	}
	if sent := fx.mailer.Sent(); len(sent) != 2 || sent[1].To[0] != "postmaster@trust.nhs.example" {
		t.Fatalf("domain challenge sent to %v, want postmaster@trust.nhs.example", sent[len(sent)-1].To)
	}
}

func TestChallengeLimits(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, directorytest.Pending("gp.a81001@nhs.example"))
	ctx := admin(t)
	e := mustLookup(t, fx.d, "gp.a81001@nhs.example")

	t.Run("attempts", func(t *testing.T) {
		if err := fx.d.StartChallenge(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		code := directorytest.Code(fx.mailer.Sent()[len(fx.mailer.Sent())-1])
		for i := range directory.DefaultChallengeAttempts {
			if err := fx.d.ConfirmChallenge(ctx, e.ID, "WRONG-CODE"+string(rune('A'+i))); !errors.Is(err, directory.ErrWrongCode) {
				t.Fatalf("attempt %d = %v, want ErrWrongCode", i+1, err)
			}
		}
		if err := fx.d.ConfirmChallenge(ctx, e.ID, code); !errors.Is(err, directory.ErrNoChallenge) {
			t.Fatalf("right code after %d wrong = %v, want ErrNoChallenge", directory.DefaultChallengeAttempts, err)
		}
		if got := mustLookup(t, fx.d, e.Address); got.Status != directory.StatusPending {
			t.Fatalf("status %s, want still pending", got.Status)
		}
	})
	t.Run("expiry", func(t *testing.T) {
		if err := fx.d.StartChallenge(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		code := directorytest.Code(fx.mailer.Sent()[len(fx.mailer.Sent())-1])
		fx.clock.Advance(directory.DefaultChallengeTTL)
		if err := fx.d.ConfirmChallenge(ctx, e.ID, code); !errors.Is(err, directory.ErrNoChallenge) || !strings.Contains(err.Error(), "expired") {
			t.Fatalf("ConfirmChallenge after 72h = %v, want ErrNoChallenge, expired", err)
		}
	})
	t.Run("new replaces old", func(t *testing.T) {
		if err := fx.d.StartChallenge(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		old := directorytest.Code(fx.mailer.Sent()[len(fx.mailer.Sent())-1])
		if err := fx.d.StartChallenge(ctx, e.ID); err != nil {
			t.Fatal(err)
		}
		if err := fx.d.ConfirmChallenge(ctx, e.ID, old); !errors.Is(err, directory.ErrWrongCode) {
			t.Fatalf("old code after a new challenge = %v, want ErrWrongCode", err)
		}
	})
	t.Run("send fails", func(t *testing.T) {
		fx := newFixture(t, directorytest.Pending("gp.a81001@nhs.example"))
		fx.mailer.Err = errors.New("relay down")
		e := mustLookup(t, fx.d, "gp.a81001@nhs.example")
		if err := fx.d.StartChallenge(ctx, e.ID); err == nil || !strings.Contains(err.Error(), "relay down") {
			t.Fatalf("StartChallenge(send fails) = %v", err)
		}
		if snap, _ := fx.store.Load(ctx); len(snap.Challenges) != 0 {
			t.Fatalf("unsent challenge left stored: %+v", snap.Challenges)
		}
		hasEvent(t, fx.audit, "endpoint.challenge", e.Address, "failed")
	})
	t.Run("no mailer", func(t *testing.T) {
		d := directorytest.New(t, directorytest.Pending("gp.a81001@nhs.example"))
		e := mustLookup(t, d, "gp.a81001@nhs.example")
		if err := d.StartChallenge(ctx, e.ID); !errors.Is(err, directory.ErrNoMailer) {
			t.Fatalf("StartChallenge(no mailer) = %v, want ErrNoMailer", err)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		if err := fx.d.StartChallenge(ctx, "ep-none"); !errors.Is(err, directory.ErrNotFound) {
			t.Fatalf("StartChallenge(unknown) = %v, want ErrNotFound", err)
		}
		if err := fx.d.ConfirmChallenge(ctx, "ep-none", "x"); !errors.Is(err, directory.ErrNotFound) {
			t.Fatalf("ConfirmChallenge(unknown) = %v, want ErrNotFound", err)
		}
	})
}

func TestOpenNeedsChallengeFrom(t *testing.T) {
	t.Parallel()
	_, err := directory.Open(t.Context(), directory.Config{Store: directorytest.NewStore(t), Mailer: &directorytest.Mailer{}})
	if err == nil || !strings.Contains(err.Error(), "ChallengeFrom") {
		t.Fatalf("Open(Mailer without ChallengeFrom) = %v, want an error naming ChallengeFrom", err)
	}
	if _, err := directory.Open(t.Context(), directory.Config{}); err == nil {
		t.Fatal("Open(no Store) succeeded")
	}
	err = directory.Config{WarnBefore: -1, HashCost: 99, ChallengeAttempts: -1}.Validate()
	for _, field := range []string{"Store", "WarnBefore", "HashCost", "ChallengeAttempts"} {
		if err == nil || !strings.Contains(err.Error(), field+":") {
			t.Errorf("Validate() = %v, want a problem naming %s", err, field)
		}
	}
}
