# -DSEGNODE_SANITIZE=address,undefined (or thread) instruments every target.
if(SEGNODE_SANITIZE)
  message(STATUS "segnode: sanitizers enabled: ${SEGNODE_SANITIZE}")
  add_compile_options(-fsanitize=${SEGNODE_SANITIZE} -fno-omit-frame-pointer)
  add_link_options(-fsanitize=${SEGNODE_SANITIZE})
endif()
