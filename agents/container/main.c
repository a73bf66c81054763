/* dyno-container: a data container of DynoStore (see container.h). */
#include "container.h"

int main(int argc, char **argv)
{
    return container_main(argc, argv);
}
