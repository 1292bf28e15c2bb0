#include "test.h"
static void test_nothing(void)
{
}
static const test_case_t tests[] = {{"test_nothing", test_nothing}, {0}};
TEST_MAIN(tests)
