package main

import (
	"fmt"

	"nhsrelay/directory"
	"nhsrelay/smtpd"
	"nhsrelay/smtpd/challengereply"
)

// recipientHandlers are smtpd's special recipients (smtpd.Config.Handlers):
// replies to the directory's verification challenges, sent to
// directory.challenge_from, confirm them (issue 4). T.37 fax mail's handler
// comes from the fax bridge (serve_fax.go) and is added in openSMTP.
func recipientHandlers(cfg *config, dir *directory.Directory) ([]smtpd.RecipientHandler, error) {
	var hs []smtpd.RecipientHandler
	if cfg.ChallengeFrom != "" {
		h, err := challengereply.New(challengereply.Config{Address: cfg.ChallengeFrom, Directory: dir})
		if err != nil {
			return nil, fmt.Errorf("directory.challenge_from: %w", err)
		}
		hs = append(hs, h)
	}
	return hs, nil
}
