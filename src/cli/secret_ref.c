/* Secret references for the commands: see secret_ref.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secret_ref.h"

int sky_cli_secret_ref_resolve_opt(const char *cmd, const char *what, const char *value, char **out)
{
    *out = NULL;
    if (value == NULL || strncmp(value, "keyvault://", 11) != 0)
        return 0;
    fprintf(stderr, "skyio %s: %s: cannot read %s: not supported yet\n", cmd, what, value);
    return -1;
}

int sky_cli_secret_ref_resolve_env(const char *cmd, const char *var)
{
    char *v = NULL;
    return sky_cli_secret_ref_resolve_opt(cmd, var, getenv(var), &v);
}
