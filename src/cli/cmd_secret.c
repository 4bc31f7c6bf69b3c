/* `skyio secret`: Key Vault secrets. */
#include <stdio.h>

#include "cli.h"

int sky_cli_secret(int argc, char **argv)
{
    (void)argc, (void)argv;
    fprintf(stderr, "skyio secret: not yet\n");
    return SKY_EXIT_USAGE;
}
