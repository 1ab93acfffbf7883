package api

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"nhsrelay/audit"
	"nhsrelay/directory"
)

// organisationInput is what a client may set on an organisation; Source and
// ImportedAt belong to the server.
type organisationInput struct {
	ODS       string              `json:"ods"`
	Name      string              `json:"name"`
	Status    directory.OrgStatus `json:"status"`
	ClosedOn  time.Time           `json:"closed_on,omitzero"`
	Successor string              `json:"successor,omitempty"`
	Address   []string            `json:"address,omitempty"`
	Postcode  string              `json:"postcode,omitempty"`
	Phone     string              `json:"phone,omitempty"`
	Kind      string              `json:"kind,omitempty"`
}

func (in organisationInput) apply(o *directory.Organisation) {
	o.Name, o.Status, o.ClosedOn, o.Successor = in.Name, in.Status, in.ClosedOn, in.Successor
	o.Address, o.Postcode, o.Phone, o.Kind = in.Address, in.Postcode, in.Phone, in.Kind
}

type organisationList struct {
	Organisations []directory.Organisation `json:"organisations"`
}

func (s *server) listOrganisations(w http.ResponseWriter, r *http.Request) error {
	if err := checkQuery(r, "name"); err != nil {
		return err
	}
	orgs := s.d.Organisations(r.Context(), r.URL.Query().Get("name"))
	if orgs == nil {
		orgs = []directory.Organisation{}
	}
	writeJSON(w, http.StatusOK, organisationList{orgs})
	return nil
}

func (s *server) getOrganisation(w http.ResponseWriter, r *http.Request) error {
	code := strings.ToUpper(r.PathValue("ods"))
	o, err := s.d.Organisation(r.Context(), code)
	if err != nil {
		return toAPIError(err, "no organisation with ODS code "+code)
	}
	writeJSON(w, http.StatusOK, o)
	return nil
}

// addOrganisation creates an organisation; one that exists is a conflict
// (PUT replaces).
func (s *server) addOrganisation(w http.ResponseWriter, r *http.Request) error {
	var in organisationInput
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	code := strings.ToUpper(strings.TrimSpace(in.ODS))
	if code == "" {
		return fieldError("ods", "required")
	}
	if _, err := s.d.Organisation(r.Context(), code); err == nil {
		return errorf(http.StatusConflict, "organisation %s already exists; PUT /v1/directory/organisations/%s to change it", code, code)
	} else if !errors.Is(err, directory.ErrNotFound) {
		return err
	}
	o := directory.Organisation{ODS: code, Source: directory.SourceAdmin}
	in.apply(&o)
	if err := s.d.PutOrganisation(r.Context(), o); err != nil {
		return err
	}
	s.changed(r, "organisation added", "ods", code)
	return s.writeOrganisation(w, r, http.StatusCreated, code)
}

// putOrganisation creates or replaces an organisation's editable fields. An
// ODS-imported organisation keeps its source; the next import may overwrite
// what ODS publishes.
func (s *server) putOrganisation(w http.ResponseWriter, r *http.Request) error {
	code := strings.ToUpper(r.PathValue("ods"))
	var in organisationInput
	if err := s.decodeJSON(w, r, &in); err != nil {
		return err
	}
	if in.ODS != "" && !strings.EqualFold(strings.TrimSpace(in.ODS), code) {
		return fieldError("ods", "does not match the ODS code in the path ("+code+")")
	}
	o, err := s.d.Organisation(r.Context(), code)
	status := http.StatusOK
	switch {
	case errors.Is(err, directory.ErrNotFound):
		o, status = directory.Organisation{ODS: code, Source: directory.SourceAdmin}, http.StatusCreated
	case err != nil:
		return err
	}
	in.apply(&o)
	if err := s.d.PutOrganisation(r.Context(), o); err != nil {
		return err
	}
	s.changed(r, "organisation put", "ods", code)
	return s.writeOrganisation(w, r, status, code)
}

// writeOrganisation answers with the organisation as stored.
func (s *server) writeOrganisation(w http.ResponseWriter, r *http.Request, status int, code string) error {
	o, err := s.d.Organisation(r.Context(), code)
	if err != nil {
		return err
	}
	if status == http.StatusCreated {
		w.Header().Set("Location", "/v1/directory/organisations/"+code)
	}
	writeJSON(w, status, o)
	return nil
}

// changed logs a write with who made it; the directory audits it.
func (s *server) changed(r *http.Request, msg, key, val string, args ...any) {
	s.log.Info(msg, append([]any{"actor", audit.ActorFrom(r.Context()), key, val}, args...)...)
}
