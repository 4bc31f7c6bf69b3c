/* Secret references (keyvault://VAULT/NAME) where the commands read a key, resolved once. */
#ifndef SKY_CLI_SECRET_REF_H
#define SKY_CLI_SECRET_REF_H

/**
 * Before command @p cmd runs: every keyvault:// reference where it reads a key is fetched
 * through the credential chain, once, on a loop of its own, and put in the reference's
 * place in this process's memory only: the value of --account-key (blob, queue) in
 * @p argv, and for batch, chat and serve every environment variable that holds one
 * ($OPENAI_API_KEY, $AZURE_OPENAI_API_KEY, those a gateway config names with key_env). The values
 * are wiped at exit; /proc's copies of the command line and environment keep the
 * reference. Returns 0, or -1 after saying on stderr which reference could not be read
 * and why (never a secret): the command then exits 3.
 */
int sky_cli_secret_refs_resolve(const char *cmd, int argc, char **argv);

/** Fetch one reference's value into a new string (wipe and free it): 0, or -1 after saying
 *  on stderr, for @p what, why not. */
int sky_cli_secret_ref_fetch(const char *cmd, const char *what, const char *ref, char **out);

#endif
