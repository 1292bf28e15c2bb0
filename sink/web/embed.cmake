# Writes the bytes of IN into OUT as a C array NAME[] (with a NUL after
# them) and its length NAME_len, so a file ships inside a binary without
# xxd. Run as: cmake -DIN=FILE -DOUT=FILE.c -DNAME=SYMBOL -P embed.cmake
# (Bytes rather than a string literal like zpipe/kit/embed.cmake: any file,
# of any length, comes out exactly.)
file(READ "${IN}" hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR len "${digits} / 2")
# Twelve bytes a line, then each byte as 0xNN.
string(REPEAT "[0-9a-f]" 24 line)
string(REGEX REPLACE "(${line})" "\\1\n    " hex "${hex}")
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
get_filename_component(src "${IN}" NAME)
set(text "/* Generated from ${src} by sink/web/embed.cmake: do not edit. */\n")
string(APPEND text "#include <stddef.h>\n")
string(APPEND text "extern const unsigned char ${NAME}[];\n")
string(APPEND text "extern const size_t ${NAME}_len;\n")
string(APPEND text "const unsigned char ${NAME}[] = {\n    ${body}0x00};\n")
string(APPEND text "const size_t ${NAME}_len = ${len};\n")
# Rewrite only on change, so an unchanged page rebuilds nothing.
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
