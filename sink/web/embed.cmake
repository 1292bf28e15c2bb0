# Writes the bytes of IN into OUT as a C array NAME[] (with a NUL after
# them) and its length NAME_len, so a file ships inside a binary without
# xxd. Run as: cmake -DIN=FILE -DOUT=FILE.c -DNAME=SYMBOL -P embed.cmake
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR len "${digits} / 2")
# Twelve bytes a line, then each byte as 0xNN.
string(REPEAT "[0-9a-f]" 24 line)
string(REGEX REPLACE "(${line})" "\\1\n    " hex "${hex}")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
get_filename_component(src "${IN}" NAME)
file(WRITE "${OUT}.tmp"
     "/* Generated from ${src} by embed.cmake: do not edit. */\n"
     "#include <stddef.h>\n"
     "extern const unsigned char ${NAME}[];\n"
     "extern const size_t ${NAME}_len;\n"
     "const unsigned char ${NAME}[] = {\n    ${body}0x00};\n"
     "const size_t ${NAME}_len = ${len};\n")
file(RENAME "${OUT}.tmp" "${OUT}")
