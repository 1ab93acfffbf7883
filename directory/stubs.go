package directory

import (
	"context"
	"errors"
)

var errTODO = errors.New("directory: not implemented yet")

func (d *Directory) CheckRecipient(ctx context.Context, addr string) (Endpoint, error) {
	return Endpoint{}, errTODO
}
func (d *Directory) Lookup(ctx context.Context, addr string) (Endpoint, error) {
	return Endpoint{}, errTODO
}
func (d *Directory) Endpoint(ctx context.Context, id string) (Endpoint, error) {
	return Endpoint{}, errTODO
}
func (d *Directory) Endpoints(ctx context.Context, f Filter) []Endpoint { return nil }
func (d *Directory) ByFax(ctx context.Context, number string) (Endpoint, error) {
	return Endpoint{}, errTODO
}
func (d *Directory) Organisation(ctx context.Context, ods string) (Organisation, error) {
	return Organisation{}, errTODO
}
func (d *Directory) Organisations(ctx context.Context, name string) []Organisation { return nil }
func (d *Directory) PutOrganisation(ctx context.Context, o Organisation) error     { return errTODO }
func (d *Directory) AddEndpoint(ctx context.Context, e Endpoint) (Endpoint, error) {
	return Endpoint{}, errTODO
}
func (d *Directory) UpdateEndpoint(ctx context.Context, e Endpoint) error        { return errTODO }
func (d *Directory) Suspend(ctx context.Context, id, reason string) error        { return errTODO }
func (d *Directory) Retire(ctx context.Context, id, reason string) error         { return errTODO }
func (d *Directory) StartChallenge(ctx context.Context, id string) error         { return errTODO }
func (d *Directory) ConfirmChallenge(ctx context.Context, id, code string) error { return errTODO }
func (d *Directory) Attest(ctx context.Context, id, evidence string) error       { return errTODO }
func (d *Directory) SetRedirect(ctx context.Context, id, to string) error        { return errTODO }
func (d *Directory) ImportOrganisations(ctx context.Context, orgs []Organisation) (ImportResult, error) {
	return ImportResult{}, errTODO
}
func (d *Directory) CheckExpiry(ctx context.Context) (ExpiryReport, error) {
	return ExpiryReport{}, errTODO
}
func (d *Directory) Check(ctx context.Context, addr string) CheckResult { return CheckResult{} }
func (d *Directory) Authenticate(ctx context.Context, user, pass string) (Account, error) {
	return Account{}, errTODO
}
func (d *Directory) PutAccount(ctx context.Context, a Account) error { return errTODO }
func (d *Directory) Account(ctx context.Context, user string) (Account, error) {
	return Account{}, errTODO
}
func HashPassword(pw string) (string, error)    { return "", errTODO }
func NormaliseFax(s string) (string, error)     { return "", errTODO }
func NormaliseAddress(s string) (string, error) { return "", errTODO }
