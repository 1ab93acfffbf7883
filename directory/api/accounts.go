package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"nhsrelay/directory"
)

// Account is a sender account as the API shows it: everything but the
// password hash, which never leaves the directory.
type Account struct {
	Username       string    `json:"username"`
	ODS            string    `json:"ods,omitempty"`
	Addresses      []string  `json:"addresses"`
	Disabled       bool      `json:"disabled,omitempty"`
	DisabledReason string    `json:"disabled_reason,omitempty"`
	Receipts       string    `json:"receipts,omitempty"`
	Note           string    `json:"note,omitempty"`
	Created        time.Time `json:"created,omitzero"`
	PasswordSet    time.Time `json:"password_set,omitzero"`
}

// AccountView drops the hash from a directory account.
func AccountView(a directory.Account) Account {
	return Account{Username: a.Username, ODS: a.ODS, Addresses: a.Addresses, Disabled: a.Disabled,
		DisabledReason: a.DisabledReason, Receipts: a.Receipts, Note: a.Note, Created: a.Created, PasswordSet: a.PasswordSet}
}

func accountViews(as []directory.Account) []Account {
	out := make([]Account, 0, len(as))
	for _, a := range as {
		out = append(out, AccountView(a))
	}
	return out
}

// AccountList is the answer to GET /v1/accounts.
type AccountList struct {
	Accounts []Account `json:"accounts"`
}

// AccountPassword is the answer to POST /v1/accounts and to
// POST /v1/accounts/{user}/password. Password is set only when the server
// generated it: it is shown this once and kept only as a bcrypt hash.
type AccountPassword struct {
	Account  Account `json:"account"`
	Password string  `json:"password,omitempty"`
}

// accountInput is the body of POST /v1/accounts and PUT /v1/accounts/{user}.
// The state fields change only through the action URLs, so they are
// refused here with a pointer to the right one.
type accountInput struct {
	Username  string   `json:"username"`
	ODS       string   `json:"ods"`
	Addresses []string `json:"addresses"`
	Note      string   `json:"note"`
	Receipts  string   `json:"receipts"`
	// Password (POST only) sets the first password; without it the server
	// generates one and answers with it.
	Password *string `json:"password"`

	Disabled       json.RawMessage `json:"disabled"`
	DisabledReason json.RawMessage `json:"disabled_reason"`
	PasswordHash   json.RawMessage `json:"password_hash"`
}

// readOnly names each state field given, with the URL that changes it.
func (in accountInput) readOnly(f map[string]string) {
	if in.Disabled != nil || in.DisabledReason != nil {
		f["disabled"] = "read-only: POST /v1/accounts/{user}/disable or enable changes it"
	}
	if in.PasswordHash != nil {
		f["password_hash"] = "never accepted or shown: send password, or POST /v1/accounts/{user}/password"
	}
}

// passwordInput is the body of POST .../password: a password to set, or
// none for a generated one.
type passwordInput struct {
	Password *string `json:"password"`
}

// ownsInput is the body of POST .../owns.
type ownsInput struct {
	Add    []string `json:"add"`
	Remove []string `json:"remove"`
}

// mountAccounts adds the account routes to s.mux.
func (s *server) mountAccounts() {
	const v1 = "/v1/accounts"
	s.mux.HandleFunc("GET "+v1, s.admin(s.listAccounts))
	s.mux.HandleFunc("POST "+v1, s.admin(s.addAccount))
	s.mux.HandleFunc("GET "+v1+"/{user}", s.admin(s.getAccount))
	s.mux.HandleFunc("PUT "+v1+"/{user}", s.admin(s.putAccount))
	s.mux.HandleFunc("DELETE "+v1+"/{user}", s.admin(s.deleteAccount))
	s.mux.HandleFunc("POST "+v1+"/{user}/{action}", s.admin(s.accountAction))
	s.mux.HandleFunc(v1+"/", s.admin(s.adminNotFound))
	s.mux.HandleFunc(v1, s.admin(s.adminNotFound))
}

func (s *server) listAccounts(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, AccountList{Accounts: accountViews(s.d.Accounts(r.Context()))})
	return nil
}

func (s *server) getAccount(w http.ResponseWriter, r *http.Request) error {
	user := r.PathValue("user")
	a, err := s.d.Account(r.Context(), user)
	if err != nil {
		return toAPIError(err, "no account "+user)
	}
	writeJSON(w, http.StatusOK, AccountView(a))
	return nil
}

// password returns the password to set (given, or generated) and whether
// it was generated; a given one that is too short or long is named in f.
func (s *server) password(f map[string]string, given *string) (pw, hash string, generated bool) {
	pw, generated = directory.NewPassword(), true
	if given != nil {
		pw, generated = *given, false
	}
	hash, err := s.d.HashPassword(pw)
	if err != nil {
		f["password"] = strings.TrimPrefix(err.Error(), "directory: hash password: ")
	}
	return pw, hash, generated
}

// addAccount creates an account; every bad field, from the body and from
// the directory's checks, is named in one 400.
func (s *server) addAccount(w http.ResponseWriter, r *http.Request) error {
	var in accountInput
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	f := map[string]string{}
	in.readOnly(f)
	pw, hash, generated := s.password(f, in.Password)
	a := directory.Account{Username: in.Username, ODS: in.ODS, Addresses: in.Addresses,
		Note: in.Note, Receipts: in.Receipts, PasswordHash: hash}
	if len(f) > 0 { // refused: check the rest without writing
		return toAPIError(withFields(s.d.ValidateAccount(r.Context(), a), f), "")
	}
	a, err := s.d.AddAccount(r.Context(), a)
	if err != nil {
		return toAPIError(err, "")
	}
	s.changed(r, "account added", "user", a.Username)
	w.Header().Set("Location", "/v1/accounts/"+a.Username)
	out := AccountPassword{Account: AccountView(a)}
	if generated {
		out.Password = pw
	}
	writeJSON(w, http.StatusCreated, out)
	return nil
}

// withFields merges field problems the API found into err's
// *ValidationError, so that one 400 names them all.
func withFields(err error, f map[string]string) error {
	var ve *directory.ValidationError
	switch {
	case errors.As(err, &ve):
		for k, v := range ve.Fields {
			if k == "password_hash" && f["password"] != "" {
				continue // the same problem, said once
			}
			f[k] = v
		}
	case err != nil:
		return err
	}
	if len(f) == 0 {
		return nil
	}
	return &directory.ValidationError{Fields: f}
}

// putAccount replaces the editable fields (a field left out is emptied,
// as PUT means).
func (s *server) putAccount(w http.ResponseWriter, r *http.Request) error {
	user := r.PathValue("user")
	var in accountInput
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	f := map[string]string{}
	in.readOnly(f)
	if in.Password != nil {
		f["password"] = "read-only here: POST /v1/accounts/{user}/password sets it"
	}
	if in.Username != "" && !strings.EqualFold(in.Username, user) {
		f["username"] = "does not match the username in the path (" + user + "); a username cannot change"
	}
	if len(f) > 0 { // refused: check the rest without writing, so that one 400 names all
		old, err := s.d.Account(r.Context(), user)
		if err != nil {
			return toAPIError(err, "no account "+user)
		}
		old.ODS, old.Addresses, old.Note, old.Receipts = in.ODS, in.Addresses, in.Note, in.Receipts
		old.Username = user
		return toAPIError(withFields(s.d.ValidateAccount(r.Context(), old), f), "")
	}
	a, err := s.d.UpdateAccount(r.Context(), user, directory.AccountUpdate{ODS: in.ODS, Addresses: in.Addresses, Note: in.Note, Receipts: in.Receipts})
	if err != nil {
		return toAPIError(err, "no account "+user)
	}
	s.changed(r, "account updated", "user", a.Username)
	writeJSON(w, http.StatusOK, AccountView(a))
	return nil
}

func (s *server) deleteAccount(w http.ResponseWriter, r *http.Request) error {
	user := r.PathValue("user")
	if err := s.d.DeleteAccount(r.Context(), user); err != nil {
		return toAPIError(err, "no account "+user)
	}
	s.changed(r, "account deleted", "user", user)
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// accountAction serves POST /v1/accounts/{user}/password, disable, enable
// and owns; each answers with the account as it now is.
func (s *server) accountAction(w http.ResponseWriter, r *http.Request) error {
	user, action := r.PathValue("user"), r.PathValue("action")
	ctx := r.Context()
	var err error
	out := AccountPassword{}
	switch action {
	case "password":
		var in passwordInput
		if err := s.decodeOptionalJSON(w, r, &in); err != nil {
			return err
		}
		if _, err := s.d.Account(ctx, user); err != nil {
			return toAPIError(err, "no account "+user)
		}
		f := map[string]string{}
		pw, hash, generated := s.password(f, in.Password)
		if len(f) > 0 {
			return toAPIError(&directory.ValidationError{Fields: f}, "")
		}
		err = s.d.SetPassword(ctx, user, hash)
		if generated {
			out.Password = pw
		}
	case "disable":
		var in reasonInput
		if err := s.decodeJSON(w, r, &in); err != nil {
			return err
		}
		err = s.d.DisableAccount(ctx, user, in.Reason)
	case "enable":
		var in struct{}
		if err := s.decodeOptionalJSON(w, r, &in); err != nil {
			return err
		}
		err = s.d.EnableAccount(ctx, user)
	case "owns":
		var in ownsInput
		if err := s.decodeJSON(w, r, &in); err != nil {
			return err
		}
		if len(in.Add)+len(in.Remove) == 0 {
			return fieldError("add", "give addresses to add or remove")
		}
		_, err = s.d.ChangeAddresses(ctx, user, in.Add, in.Remove)
	default:
		return errorf(http.StatusNotFound, "no account action %q (known: password, disable, enable, owns)", action)
	}
	if err != nil {
		return toAPIError(err, "no account "+user)
	}
	a, err := s.d.Account(ctx, user)
	if err != nil {
		return toAPIError(err, "no account "+user)
	}
	s.changed(r, "account "+action, "user", a.Username)
	out.Account = AccountView(a)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// decodeOptionalJSON is decodeJSON for a body that may be left out.
func (s *server) decodeOptionalJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if r.ContentLength == 0 {
		return nil
	}
	return s.decodeJSON(w, r, v)
}
