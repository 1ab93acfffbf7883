package directory

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// MinPasswordLength is the shortest password HashPassword accepts.
const MinPasswordLength = 10

// HashPassword returns the bcrypt hash of pw for Account.PasswordHash.
// bcrypt uses at most 72 bytes, so longer passwords are refused rather than
// silently cut.
func HashPassword(pw string) (string, error) {
	return HashPasswordCost(pw, bcrypt.DefaultCost)
}

// HashPasswordCost is HashPassword with a chosen bcrypt cost (tests use
// bcrypt.MinCost).
func HashPasswordCost(pw string, cost int) (string, error) {
	if len(pw) < MinPasswordLength {
		return "", fmt.Errorf("directory: hash password: at least %d characters are needed", MinPasswordLength)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		if errors.Is(err, bcrypt.ErrPasswordTooLong) {
			return "", errors.New("directory: hash password: at most 72 bytes are allowed")
		}
		return "", fmt.Errorf("directory: hash password: %w", err)
	}
	return string(h), nil
}

// PutAccount adds or replaces a sender account (username case folded).
// Invalid input gives a *ValidationError and writes nothing.
func (d *Directory) PutAccount(ctx context.Context, a Account) error {
	if err := d.auditGate(); err != nil { // auditgate.go
		return err
	}
	d.wmu.Lock()
	defer d.wmu.Unlock()
	n, err := d.checkAccount(a)
	if err != nil {
		d.record(ctx, "account.put", "", outcomeRefused, "account "+clip(a.Username)+": "+err.Error())
		return err
	}
	_, existed := d.accts[n.Username]
	if err := d.commit(ctx, "put account "+n.Username, Batch{Accounts: []Account{n}}); err != nil {
		d.record(ctx, "account.put", "", outcomeFailed, "account "+n.Username+": "+err.Error())
		return err
	}
	action := "account.added"
	if existed {
		action = "account.updated"
	}
	detail := "account " + n.Username + " sends as " + strings.Join(n.Addresses, ", ")
	if n.Disabled {
		detail += " (disabled)"
	}
	d.record(ctx, action, "", outcomeOK, detail)
	return nil
}

// Account returns the account user (case folded).
func (d *Directory) Account(ctx context.Context, user string) (Account, error) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	a, ok := d.accts[strings.ToLower(strings.TrimSpace(user))]
	if !ok {
		return Account{}, fmt.Errorf("directory: account %q: %w", clip(user), ErrNotFound)
	}
	return a, nil
}

// Authenticate checks a username and password (SMTP AUTH, RFC 4954). Every
// failure wraps ErrAuthFailed; an unknown user costs the same bcrypt
// comparison as a known one, so timing does not tell which names exist.
// Disabled accounts fail.
//
// A success is remembered for Config.AuthCacheTTL (see authCache), so a
// client that logs in on every connection does not pay bcrypt every time.
// Failures are never remembered: a wrong password always costs bcrypt.
func (d *Directory) Authenticate(ctx context.Context, user, pass string) (Account, error) {
	name := strings.ToLower(strings.TrimSpace(user))
	d.mu.RLock()
	a, ok := d.accts[name]
	d.mu.RUnlock()
	if ok && !a.Disabled && d.logins.hit(name, pass, a.PasswordHash, d.cfg.Now()) {
		return a, nil
	}
	hash := d.dummy()
	if ok {
		hash = []byte(a.PasswordHash)
	}
	cmpErr := d.compare(hash, []byte(pass))
	why := ""
	switch {
	case !ok:
		why = "no such account"
	case cmpErr != nil:
		why = "wrong password"
	case a.Disabled:
		why = "account disabled"
	default:
		d.logins.put(name, pass, a.PasswordHash, d.cfg.Now())
		return a, nil
	}
	return Account{}, fmt.Errorf("directory: authenticate %q: %s: %w", clip(user), why, ErrAuthFailed)
}
