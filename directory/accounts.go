package directory

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
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

// HashPassword is the package's HashPassword at Config.HashCost, for
// passwords set through the directory's admin API.
func (d *Directory) HashPassword(pw string) (string, error) {
	return HashPasswordCost(pw, d.cfg.HashCost)
}

// NewPassword returns a random password for a new account or a reset: 26
// base32 characters, 130 bits from crypto/rand, easy to paste into a mail
// client's settings.
func NewPassword() string { return rand.Text() }

// AccountDisabledError is what Authenticate (after a correct password) and
// ActiveAccount return for an account an administrator disabled. It wraps
// ErrAuthFailed, so a caller that only knows that still refuses the login.
type AccountDisabledError struct {
	Username string
	Reason   string // the administrator's words, may be empty
}

func (e *AccountDisabledError) Error() string {
	s := "directory: account " + e.Username + " is disabled"
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s
}

func (e *AccountDisabledError) Unwrap() error { return ErrAuthFailed }

// PutAccount adds or replaces a sender account (username case folded).
// Invalid input gives a *ValidationError and writes nothing.
func (d *Directory) PutAccount(ctx context.Context, a Account) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	var prev *Account
	if old, ok := d.accts[strings.ToLower(strings.TrimSpace(a.Username))]; ok {
		prev = &old
		a.Created = cmp.Or(a.Created, old.Created)
	}
	_, err := d.writeAccount(ctx, prev, a, "account.put", "")
	return err
}

// AddAccount creates a new sender account; Created and PasswordSet are set
// to now. An account with the same username gives an error wrapping
// ErrConflict; invalid input a *ValidationError. Nothing is written then.
func (d *Directory) AddAccount(ctx context.Context, a Account) (Account, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	user := strings.ToLower(strings.TrimSpace(a.Username))
	if _, ok := d.accts[user]; ok {
		err := fmt.Errorf("directory: add account: %s already exists; change it with passwd, owns, disable or enable: %w", user, ErrConflict)
		d.record(ctx, "account.add", "", outcomeRefused, "account "+user+": already exists")
		return Account{}, err
	}
	now := d.cfg.Now()
	a.Created, a.PasswordSet = now, now
	return d.writeAccount(ctx, nil, a, "account.add", "")
}

// ValidateAccount checks a as AddAccount would, without writing: a
// *ValidationError naming every bad field, or nil. An API that found
// problems of its own calls it so that one answer names them all.
func (d *Directory) ValidateAccount(ctx context.Context, a Account) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	_, err := d.checkAccount(a, nil)
	return err
}

// AccountUpdate holds the fields of an account an administrator replaces
// with UpdateAccount.
type AccountUpdate struct {
	ODS       string
	Addresses []string
	Note      string
	Receipts  string
}

// UpdateAccount replaces user's organisation, addresses, note and receipts
// setting; the password and the disabled state change only through
// SetPassword, DisableAccount and EnableAccount.
func (d *Directory) UpdateAccount(ctx context.Context, user string, u AccountUpdate) (Account, error) {
	return d.changeAccount(ctx, user, "account.update", func(a *Account) (string, error) {
		a.ODS, a.Addresses, a.Note, a.Receipts = u.ODS, u.Addresses, u.Note, u.Receipts
		return "", nil
	})
}

// ChangeAddresses adds and removes addresses user owns (case folded). An
// address both added and removed, or removed but not owned, is a
// *ValidationError; so is removing the last one.
func (d *Directory) ChangeAddresses(ctx context.Context, user string, add, remove []string) (Account, error) {
	return d.changeAccount(ctx, user, "account.update", func(a *Account) (string, error) {
		f := fieldErrors{}
		for i, r := range remove {
			n, err := NormaliseAddress(r)
			switch {
			case err != nil:
				f.add(fmt.Sprintf("remove[%d]", i), "%v", err)
			case !a.Owns(n):
				f.add(fmt.Sprintf("remove[%d]", i), "%s is not one of the account's addresses (%s)", n, strings.Join(a.Addresses, ", "))
			case slices.ContainsFunc(add, func(x string) bool { return strings.EqualFold(strings.TrimSpace(x), n) }):
				f.add(fmt.Sprintf("remove[%d]", i), "%s is also being added", n)
			default:
				a.Addresses = slices.DeleteFunc(a.Addresses, func(x string) bool { return strings.EqualFold(x, n) })
			}
		}
		// The added ones are checked with the rest, as addresses[n] after
		// those kept; problems with both are named in one error.
		a.Addresses = append(a.Addresses, add...)
		return "", f.err()
	})
}

// SetPassword replaces user's password hash (from HashPassword). The next
// AUTH with the old password fails: the login cache is dropped with it.
func (d *Directory) SetPassword(ctx context.Context, user, hash string) error {
	_, err := d.changeAccount(ctx, user, "account.password", func(a *Account) (string, error) {
		a.PasswordHash, a.PasswordSet = hash, d.cfg.Now()
		return "password changed", nil
	})
	return err
}

// DisableAccount stops user from logging in and from sending in sessions
// already logged in; reason (required) is quoted in the refusals.
func (d *Directory) DisableAccount(ctx context.Context, user, reason string) error {
	reason, err := reasonText("reason", reason, 200)
	if err != nil {
		return err
	}
	_, err = d.changeAccount(ctx, user, "account.disabled", func(a *Account) (string, error) {
		a.Disabled, a.DisabledReason = true, reason
		return "disabled: " + reason, nil
	})
	return err
}

// EnableAccount lets a disabled account log in again.
func (d *Directory) EnableAccount(ctx context.Context, user string) error {
	_, err := d.changeAccount(ctx, user, "account.enabled", func(a *Account) (string, error) {
		detail := "enabled"
		if a.DisabledReason != "" {
			detail += "; was disabled: " + a.DisabledReason
		}
		a.Disabled, a.DisabledReason = false, ""
		return detail, nil
	})
	return err
}

// DeleteAccount removes user for good. Its queued mail for other relays
// is signed for its organisation at delivery, looked up by account, so
// that mail waits (and in the end fails to its sender with a DSN) until an
// account of that name exists again: disable an account first, and delete
// it once its queue is empty.
func (d *Directory) DeleteAccount(ctx context.Context, user string) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	a, ok := d.accts[strings.ToLower(strings.TrimSpace(user))]
	if !ok {
		return fmt.Errorf("directory: delete account %q: %w", clip(user), ErrNotFound)
	}
	if err := d.commit(ctx, "delete account "+a.Username, Batch{DeleteAccounts: []string{a.Username}}); err != nil {
		d.record(ctx, "account.deleted", "", outcomeFailed, "account "+a.Username+": "+err.Error())
		return err
	}
	d.log.Info("directory: account deleted", "user", a.Username)
	d.record(ctx, "account.deleted", "", outcomeOK, "account "+a.Username+" (sent as "+strings.Join(a.Addresses, ", ")+")")
	return nil
}

// changeAccount applies edit to a copy of user's account, checks the result
// and writes it in one audited step (action; detail from edit, or the
// fields that changed). An edit error or invalid result writes nothing.
func (d *Directory) changeAccount(ctx context.Context, user, action string, edit func(*Account) (string, error)) (Account, error) {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	old, ok := d.accts[strings.ToLower(strings.TrimSpace(user))]
	if !ok {
		return Account{}, fmt.Errorf("directory: account %q: %w", clip(user), ErrNotFound)
	}
	a := old
	a.Addresses = slices.Clone(old.Addresses)
	detail, err := edit(&a)
	var ve *ValidationError
	switch {
	case errors.As(err, &ve): // name the result's problems too, in one error
		_, cerr := d.checkAccount(a, &old)
		err = mergeFields(ve.Fields, cerr)
	case err != nil:
	default:
		return d.writeAccount(ctx, &old, a, action, detail)
	}
	d.record(ctx, action, "", outcomeRefused, "account "+old.Username+": "+err.Error())
	return Account{}, err
}

// writeAccount checks a (against prev, the stored account, nil for a new
// one), commits it and audits action. The caller holds wmu.
func (d *Directory) writeAccount(ctx context.Context, prev *Account, a Account, action, detail string) (Account, error) {
	n, err := d.checkAccount(a, prev)
	if err != nil {
		d.record(ctx, action, "", outcomeRefused, "account "+clip(a.Username)+": "+err.Error())
		return Account{}, err
	}
	if prev != nil && sameAccount(*prev, n) {
		return n, nil
	}
	if err := d.commit(ctx, "put account "+n.Username, Batch{Accounts: []Account{n}}); err != nil {
		d.record(ctx, action, "", outcomeFailed, "account "+n.Username+": "+err.Error())
		return Account{}, err
	}
	switch {
	case detail != "":
	case prev == nil:
		detail = "sends as " + strings.Join(n.Addresses, ", ") + " for " + n.ODS
	default:
		detail = "changed " + strings.Join(changedAccountFields(*prev, n), ", ") + "; sends as " + strings.Join(n.Addresses, ", ")
	}
	if action == "account.put" || action == "account.add" || action == "account.update" {
		action = "account.updated"
		if prev == nil {
			action = "account.added"
		}
	}
	if n.Disabled && !strings.Contains(detail, "disabled") {
		detail += " (disabled)"
	}
	d.log.Info("directory: "+action, "user", n.Username)
	d.record(ctx, action, "", outcomeOK, "account "+n.Username+" "+detail)
	return n, nil
}

func sameAccount(a, b Account) bool {
	return len(changedAccountFields(a, b)) == 0 && a.Created.Equal(b.Created) && a.PasswordSet.Equal(b.PasswordSet)
}

// changedAccountFields names the fields that differ, by JSON name; the
// password is named, never shown.
func changedAccountFields(a, b Account) []string {
	var out []string
	add := func(name string, same bool) {
		if !same {
			out = append(out, name)
		}
	}
	add("password", a.PasswordHash == b.PasswordHash)
	add("ods", a.ODS == b.ODS)
	add("addresses", slices.Equal(a.Addresses, b.Addresses))
	add("disabled", a.Disabled == b.Disabled && a.DisabledReason == b.DisabledReason)
	add("receipts", a.Receipts == b.Receipts)
	add("note", a.Note == b.Note)
	return out
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

// ActiveAccount returns the account user as it is now, for a session that
// logged in earlier: an error wrapping ErrNotFound once it is deleted, an
// *AccountDisabledError once it is disabled.
func (d *Directory) ActiveAccount(ctx context.Context, user string) (Account, error) {
	a, err := d.Account(ctx, user)
	if err == nil && a.Disabled {
		return Account{}, &AccountDisabledError{Username: a.Username, Reason: a.DisabledReason}
	}
	return a, err
}

// Accounts returns every account, sorted by username.
func (d *Directory) Accounts(ctx context.Context) []Account {
	d.mu.RLock()
	out := make([]Account, 0, len(d.accts))
	for _, a := range d.accts {
		out = append(out, a)
	}
	d.mu.RUnlock()
	slices.SortFunc(out, func(a, b Account) int { return strings.Compare(a.Username, b.Username) })
	return out
}

// Authenticate checks a username and password (SMTP AUTH, RFC 4954). Every
// failure wraps ErrAuthFailed; an unknown user costs the same bcrypt
// comparison as a known one, so timing does not tell which names exist.
// A disabled account fails with an *AccountDisabledError, but only after
// the right password: a guesser learns nothing more than before.
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
		return Account{}, &AccountDisabledError{Username: a.Username, Reason: a.DisabledReason}
	default:
		d.logins.put(name, pass, a.PasswordHash, d.cfg.Now())
		return a, nil
	}
	return Account{}, fmt.Errorf("directory: authenticate %q: %s: %w", clip(user), why, ErrAuthFailed)
}
