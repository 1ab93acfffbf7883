package directory_test

import (
	"errors"
	"strings"
	"testing"

	"nhsrelay/directory"
	"nhsrelay/directory/directorytest"
)

// The challenge mail says how to confirm, and holds nothing clinical: the
// endpoint, its organisation, the code and the instructions only.
func TestChallengeMailText(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, directorytest.Pending("gp.a81001@nhs.example"))
	e := mustLookup(t, fx.d, "gp.a81001@nhs.example")
	if err := fx.d.StartChallenge(admin(t), e.ID); err != nil {
		t.Fatal(err)
	}
	body := string(fx.mailer.Sent()[0].Data)
	body = strings.ReplaceAll(body[strings.Index(body, "\r\n\r\n")+4:], "\r\n", "\n")
	for _, want := range []string{
		"gp.a81001@nhs.example has been added to the NHS relay directory",
		"Test Practice A81001 (ODS A81001)",
		"reply to this message from gp.a81001@nhs.example",
		"nhsrelay directory verify -code CODE " + e.ID,
		"Verification code: " + directorytest.Code(fx.mailer.Sent()[0]),
		"If you did not expect this message, do not reply",
	} {
		if !strings.Contains(strings.Join(strings.Fields(body), " "), want) {
			t.Errorf("challenge mail lacks %q:\n%s", want, body)
		}
	}
}

func TestConfirmByReply(t *testing.T) {
	t.Parallel()
	fx := newFixture(t, directorytest.Pending("gp.a81001@nhs.example"), directorytest.Pending("trust.nhs.example"))
	ctx := admin(t)
	e := mustLookup(t, fx.d, "gp.a81001@nhs.example")
	if err := fx.d.StartChallenge(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	code := directorytest.Code(fx.mailer.Sent()[0])
	original := strings.ReplaceAll(string(fx.mailer.Sent()[0].Data), "\r\n", "\n")
	quoted := "> " + strings.ReplaceAll(original, "\n", "\n> ")

	for _, tc := range []struct {
		name, from, text string
		want             error
	}{
		{"stranger", "someone@elsewhere.example", code, directory.ErrNoChallenge},
		{"not an address", "<>", code, directory.ErrNoChallenge},
		// A reply that only quotes the challenge (">" quoting, or an
		// unquoted copy below "Original Message") confirms nothing: whoever
		// replies to say they did not expect it must not verify it.
		{"quoted only", "gp.a81001@nhs.example", "I did not ask for this.\n\n" + quoted, directory.ErrNoCode},
		{"copied only", "gp.a81001@nhs.example", "Who are you?\n-----Original Message-----\n" + original, directory.ErrNoCode},
		{"code past 64 KiB", "gp.a81001@nhs.example", strings.Repeat("x", 64<<10) + "\n" + code, directory.ErrNoCode},
		{"wrong code", "gp.a81001@nhs.example", "Here it is: ABCDE-FGHJK", directory.ErrWrongCode},
	} {
		if err := fx.d.ConfirmByReply(t.Context(), tc.from, tc.text); !errors.Is(err, tc.want) {
			t.Errorf("%s: ConfirmByReply = %v, want %v", tc.name, err, tc.want)
		}
	}
	if got := mustLookup(t, fx.d, e.Address); got.Status != directory.StatusPending {
		t.Fatalf("after refused replies: %s", got.Status)
	}
	ev := hasEvent(t, fx.audit, "endpoint.challenge.confirm", e.Address, "refused")
	if ev.Actor != "reply from gp.a81001@nhs.example" {
		t.Errorf("refused reply audited as %q", ev.Actor)
	}

	// The owner types the code above the quoted challenge, lower case.
	text := "Confirmed, thanks.\n" + strings.ToLower(code) + "\n\n" + quoted
	if err := fx.d.ConfirmByReply(t.Context(), "GP.A81001@nhs.example", text); err != nil {
		t.Fatalf("ConfirmByReply(code typed): %v", err)
	}
	got := mustLookup(t, fx.d, e.Address)
	if got.Status != directory.StatusVerified || got.Verification.Method != directory.MethodChallenge ||
		got.Verification.By != "reply from gp.a81001@nhs.example" || !strings.Contains(got.Verification.Evidence, "confirmed by reply") {
		t.Fatalf("after reply: %s %+v", got.Status, got.Verification)
	}
	if ev := hasEvent(t, fx.audit, "endpoint.verified", e.Address, "ok"); ev.Actor != "reply from gp.a81001@nhs.example" {
		t.Errorf("verified event actor = %q", ev.Actor)
	}
	if err := fx.d.ConfirmByReply(t.Context(), "gp.a81001@nhs.example", text); !errors.Is(err, directory.ErrNoChallenge) {
		t.Errorf("second reply = %v, want ErrNoChallenge (one use)", err)
	}

	// A whole-domain endpoint is confirmed by its postmaster.
	dom := mustLookup(t, fx.d, "trust.nhs.example")
	if err := fx.d.StartChallenge(ctx, dom.ID); err != nil {
		t.Fatal(err)
	}
	domCode := directorytest.Code(fx.mailer.Sent()[1])
	if err := fx.d.ConfirmByReply(t.Context(), "ward7@trust.nhs.example", domCode); !errors.Is(err, directory.ErrNoChallenge) {
		t.Errorf("reply from another mailbox of the domain = %v, want ErrNoChallenge", err)
	}
	if err := fx.d.ConfirmByReply(t.Context(), "postmaster@trust.nhs.example", "yes "+domCode); err != nil {
		t.Fatalf("ConfirmByReply(postmaster): %v", err)
	}
	if got := mustLookup(t, fx.d, "trust.nhs.example"); got.Status != directory.StatusVerified {
		t.Errorf("domain endpoint after postmaster's reply: %s", got.Status)
	}
}

// Codes found must be code-shaped, distinct and few, whatever the reply.
func FuzzReplyCodes(f *testing.F) {
	for _, s := range []string{"K7QXM-2HVPA", "k7qxm-2hvpa\n> K7QXM-2HVPB", "Verification code: K7QXM-2HVPA",
		"  verification CODE: K7QXM-2HVPA", "AAAAA-AAAAA BBBBB-BBBBB CCCCC-CCCCC DDDDD-DDDDD EEEEE-EEEEE FFFFF-FFFFF",
		"IIIII-OOOOO 00000-11111", "", "\x00\xff-", "K7QXM-2HVPA-2HVPA", "é K7QXM-2HVPA é", "\u212a7QXM-2HVPA ſTUVW-XYZ23"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		codes := directory.ReplyCodes(s)
		if len(codes) > 5 {
			t.Fatalf("ReplyCodes(%q) = %d codes, want at most 5", s, len(codes))
		}
		seen := map[string]bool{}
		for _, c := range codes {
			if len(c) != 11 || c[5] != '-' || strings.ToUpper(c) != c || strings.ContainsAny(c, "IO01") || seen[c] {
				t.Fatalf("ReplyCodes(%q) gave %q", s, c)
			}
			seen[c] = true
		}
	})
}
