/* Secret references (keyvault://VAULT/NAME) in the values the commands read, resolved once. */
#ifndef SKY_CLI_SECRET_REF_H
#define SKY_CLI_SECRET_REF_H

/**
 * When @p value is a keyvault:// reference, fetch the secret through the credential chain
 * (once, at start, on a loop of its own) into a new string in *out (wipe and free it);
 * otherwise *out is NULL and @p value is to be used as it is. Returns 0, or -1 after saying
 * on stderr which reference of option @p what of command @p cmd could not be read and why,
 * never with the secret. The caller exits 3 then.
 */
int sky_cli_secret_ref_resolve_opt(const char *cmd, const char *what, const char *value,
                                   char **out);

/**
 * The same for environment variable @p var: when it holds a reference, it is replaced in
 * the environment by the secret (held only in this process's memory). 0 or -1.
 */
int sky_cli_secret_ref_resolve_env(const char *cmd, const char *var);

#endif
