/* The synthetic world's ontology and knowledge base: colours, backgrounds, and per
 * category what it looks like on the canvas (aspect, height range, palette) and what
 * a person knows about it (use, place, ability, material, size, what holds what).
 *
 * The facts are chosen so that the answer to a question about one region differs from
 * the answer about the other regions of the same image: "use" is unique per category,
 * the others mostly are. A category's palette avoids the colours of the categories it
 * could be confused with at 64x64 (apple vs ball, bird vs duck). */
#include "data/synth_internal.h"

#include <string.h>

const SynthColor synth_colors[N_COLORS] = {
    [COL_RED] = {"red", {214, 40, 40}},       [COL_ORANGE] = {"orange", {245, 140, 30}},
    [COL_YELLOW] = {"yellow", {248, 215, 40}}, [COL_GREEN] = {"green", {50, 160, 60}},
    [COL_BLUE] = {"blue", {40, 80, 215}},      [COL_PURPLE] = {"purple", {140, 60, 180}},
    [COL_PINK] = {"pink", {245, 130, 185}},    [COL_BROWN] = {"brown", {130, 80, 40}},
    [COL_BLACK] = {"black", {30, 30, 34}},     [COL_WHITE] = {"white", {245, 245, 245}},
    [COL_GREY] = {"grey", {140, 140, 145}},
};

const SynthBackground synth_backgrounds[N_BACKGROUNDS] = {
    [BG_SKY] = {"sky", "in the sky", "a blue sky over a green hill", 0.80f, {150, 200, 240}, {150, 200, 240}},
    [BG_GRASS] = {"grass", "on the grass", "a grassy field", 0.38f, {80, 165, 70}, {160, 205, 240}},
    [BG_WATER] = {"water", "on the water", "a lake", 0.40f, {45, 110, 190}, {165, 210, 240}},
    [BG_FLOOR] = {"floor", "on the floor", "a wooden floor", 0.45f, {170, 120, 70}, {232, 220, 190}},
    [BG_ROAD] = {"road", "on the road", "a street", 0.42f, {95, 95, 100}, {160, 205, 240}},
    [BG_SAND] = {"sand", "on the sand", "a sandy beach", 0.42f, {232, 208, 145}, {160, 205, 240}},
};
const int synth_n_backgrounds = N_BACKGROUNDS;

#define S CB(BG_SKY)
#define G CB(BG_GRASS)
#define W CB(BG_WATER)
#define F CB(BG_FLOOR)
#define R CB(BG_ROAD)
#define N CB(BG_SAND)
#define C(x) CB(COL_##x)

const SynthCategory synth_categories[] = {
    /* name, plural, kind, aspect, hmin, hmax, palette, backgrounds, size, capacity,
     * use, place, ability, material, reason, confuse */
    {"apple", "apples", KIND_FOOD, 1.0f, 34, 50, C(RED) | C(GREEN) | C(YELLOW), G | F, 2, 0,
     "make an apple pie", "in a fruit bowl", "fall from a tree", "crisp fruit",
     "apples fall from trees in an orchard", "ball"},
    {"ball", "balls", KIND_THING, 1.0f, 34, 52, C(BLUE) | C(PURPLE) | C(PINK) | C(ORANGE), G | F | N, 2, 0,
     "play catch with friends", "on a playground", "bounce and roll", "rubber",
     "children play ball games there", "apple"},
    {"banana", "bananas", KIND_FOOD, 1.6f, 30, 44, C(YELLOW), F | N, 2, 0,
     "make a smoothie", "in a fruit bowl", "ripen and turn brown", "soft fruit",
     "bananas are an easy snack to bring along", "carrot"},
    {"carrot", "carrots", KIND_FOOD, 0.55f, 44, 66, C(ORANGE), G | F, 2, 0,
     "make a vegetable soup", "in a vegetable garden", "grow under the ground", "crunchy vegetable",
     "carrots grow in the ground of a garden", "banana"},
    {"mushroom", "mushrooms", KIND_FOOD, 1.0f, 34, 50, C(RED) | C(BROWN), G, 1, 0,
     "add flavor to a stew", "in a damp forest", "grow in the shade", "soft fungus",
     "mushrooms grow in damp grass", "flower"},
    {"cake", "cakes", KIND_FOOD, 1.1f, 42, 60, C(PINK) | C(BROWN) | C(YELLOW), F, 3, 0,
     "celebrate a birthday", "at a birthday party", "be sliced and shared", "flour and sugar",
     "someone is having a party", "box"},
    {"ice cream", "ice creams", KIND_FOOD, 0.6f, 46, 66, C(PINK) | C(WHITE) | C(BROWN) | C(GREEN), F | N, 2, 0,
     "cool down on a hot day", "in a freezer", "melt in the sun", "frozen cream",
     "people eat ice cream when it is warm", "balloon"},
    {"pizza", "pizzas", KIND_FOOD, 1.0f, 40, 56, C(YELLOW) | C(ORANGE), F, 2, 0,
     "feed hungry friends", "in a pizzeria", "be baked in an oven", "dough and cheese",
     "someone is having dinner", "cake"},
    {"cup", "cups", KIND_THING, 1.05f, 34, 50, C(RED) | C(BLUE) | C(WHITE) | C(YELLOW) | C(GREEN) | C(PURPLE), F, 2, 1,
     "drink hot tea", "in a kitchen cupboard", "hold a hot drink", "ceramic",
     "someone set it down after a drink", "bucket"},
    {"bottle", "bottles", KIND_THING, 0.4f, 46, 68, C(GREEN) | C(BLUE) | C(BROWN), F | N | W, 2, 0,
     "carry water on a trip", "in a refrigerator", "keep a drink sealed", "glass",
     "someone brought a drink along", "candle"},
    {"knife", "knives", KIND_THING, 3.0f, 22, 30, C(BROWN) | C(BLACK) | C(RED) | C(BLUE), F, 2, 0,
     "cut bread", "in a kitchen drawer", "cut through food", "steel",
     "someone is preparing food", "book"},
    {"bucket", "buckets", KIND_THING, 1.0f, 40, 58, C(RED) | C(BLUE) | C(YELLOW) | C(GREEN) | C(GREY), G | N | F, 3, 2,
     "build a sand castle", "in a garden shed", "hold a lot of water", "plastic",
     "someone is carrying water or sand", "cup"},
    {"clock", "clocks", KIND_THING, 1.0f, 36, 54, C(RED) | C(BLUE) | C(BLACK) | C(GREEN) | C(BROWN), F, 2, 0,
     "tell the time", "on a wall", "tick all day long", "metal and glass",
     "people need to know the time at home", "ball"},
    {"lamp", "lamps", KIND_THING, 0.6f, 54, 80, C(YELLOW) | C(WHITE) | C(RED) | C(GREEN) | C(BLUE), F, 3, 0,
     "light up a room", "in a living room", "shine at night", "metal and cloth",
     "a room needs light in the evening", "tree"},
    {"book", "books", KIND_THING, 0.75f, 38, 56, C(RED) | C(BLUE) | C(GREEN) | C(PURPLE) | C(BLACK), F, 2, 0,
     "learn something new", "on a bookshelf", "tell a long story", "paper",
     "someone was reading it", "box"},
    {"chair", "chairs", KIND_THING, 0.8f, 50, 74, C(BROWN) | C(RED) | C(BLUE) | C(WHITE) | C(BLACK), F | G | N, 3, 0,
     "sit down and rest", "in a dining room", "hold one person", "wood",
     "people sit there", "table"},
    {"table", "tables", KIND_THING, 1.6f, 40, 56, C(BROWN) | C(WHITE) | C(GREY) | C(BLACK), F | G, 4, 0,
     "eat dinner on", "in a dining room", "hold plates and dishes", "oak wood",
     "people eat and work there", "chair"},
    {"candle", "candles", KIND_THING, 0.45f, 44, 62, C(WHITE) | C(RED) | C(PURPLE) | C(PINK) | C(BLUE), F, 2, 0,
     "make a room smell nice", "on a dinner table", "burn with a small flame", "wax",
     "someone wanted soft light", "bottle"},
    {"kite", "kites", KIND_THING, 0.7f, 50, 74, C(RED) | C(YELLOW) | C(GREEN) | C(PURPLE) | C(ORANGE), S | G | N, 3, 0,
     "play on a windy day", "in a windy park", "fly in the wind", "paper and sticks",
     "the wind carries kites up high", "balloon"},
    {"balloon", "balloons", KIND_THING, 0.65f, 46, 66, C(RED) | C(BLUE) | C(YELLOW) | C(PINK) | C(PURPLE), S | G | F, 3, 0,
     "decorate a party", "at a party", "float up into the air", "thin rubber",
     "balloons float up into the air", "kite"},
    {"umbrella", "umbrellas", KIND_THING, 1.0f, 50, 72, C(RED) | C(BLUE) | C(BLACK) | C(YELLOW) | C(PURPLE) | C(PINK), N | R | G, 3, 0,
     "stay dry in the rain", "by the front door", "fold up when closed", "cloth and metal",
     "it gives shade or keeps the rain off", "mushroom"},
    {"guitar", "guitars", KIND_THING, 0.42f, 60, 84, C(BROWN) | C(RED) | C(BLACK) | C(ORANGE), F | G, 3, 0,
     "play a song", "in a music room", "make music with its strings", "wood and strings",
     "someone was playing music", "bottle"},
    {"hat", "hats", KIND_THING, 1.2f, 32, 46, C(BLACK) | C(BROWN) | C(RED) | C(BLUE) | C(GREY), F | N, 2, 1,
     "keep the sun off a head", "on a coat rack", "shade a face", "felt",
     "someone took it off", "cup"},
    {"car", "cars", KIND_VEHICLE, 2.0f, 36, 54, C(RED) | C(BLUE) | C(YELLOW) | C(WHITE) | C(BLACK) | C(ORANGE), R, 5, 4,
     "drive to work", "on a road", "drive fast on roads", "metal",
     "cars drive on roads", "bus"},
    {"bus", "buses", KIND_VEHICLE, 2.5f, 42, 58, C(YELLOW) | C(RED) | C(BLUE) | C(GREEN), R, 6, 4,
     "take children to school", "at a bus stop", "carry many passengers", "painted steel",
     "buses drive along roads", "car"},
    {"bicycle", "bicycles", KIND_VEHICLE, 1.6f, 40, 58, C(RED) | C(BLUE) | C(GREEN) | C(BLACK) | C(PURPLE), R | G, 4, 0,
     "ride to the park", "on a bike path", "roll on two wheels", "metal tubes",
     "people ride bicycles along roads and paths", "car"},
    {"boat", "boats", KIND_VEHICLE, 1.25f, 50, 76, C(RED) | C(BLUE) | C(BROWN) | C(WHITE) | C(YELLOW), W | N, 5, 4,
     "cross a lake", "on a lake", "float on the water", "painted wood",
     "boats float on water", "house"},
    {"airplane", "airplanes", KIND_VEHICLE, 1.8f, 38, 56, C(WHITE) | C(GREY) | C(RED) | C(YELLOW), S, 6, 4,
     "fly to another country", "at an airport", "fly high above the clouds", "aluminum",
     "airplanes fly through the sky", "bird"},
    {"fish", "fish", KIND_ANIMAL, 1.7f, 26, 40, C(ORANGE) | C(YELLOW) | C(RED) | C(PURPLE) | C(GREY), W, 2, 0,
     "keep as a pet in a tank", "in a lake", "swim under the water", "scales and fins",
     "fish live in water", "bird"},
    {"bird", "birds", KIND_ANIMAL, 1.3f, 30, 44, C(BLUE) | C(RED) | C(BLACK) | C(BROWN), S | G | W | N, 2, 0,
     "wake people with its song", "in a nest", "fly and sing", "feathers",
     "birds fly around looking for food", "duck"},
    {"duck", "ducks", KIND_ANIMAL, 1.2f, 34, 50, C(YELLOW) | C(WHITE), W | G, 3, 0,
     "feed with bread crumbs", "on a pond", "swim and quack", "soft down",
     "ducks swim on ponds and lakes", "bird"},
    {"dog", "dogs", KIND_ANIMAL, 1.4f, 38, 56, C(BROWN) | C(BLACK) | C(WHITE) | C(GREY), G | F | R | N, 3, 0,
     "guard the house", "in a doghouse", "bark and fetch", "fur and bone",
     "dogs go for walks with their owners", "cat"},
    {"cat", "cats", KIND_ANIMAL, 0.8f, 42, 60, C(GREY) | C(ORANGE) | C(BLACK) | C(WHITE), F | G, 3, 0,
     "catch mice", "on a sofa", "climb and purr", "soft fur",
     "cats like to rest in cozy places", "dog"},
    {"butterfly", "butterflies", KIND_ANIMAL, 1.3f, 30, 44, C(BLUE) | C(ORANGE) | C(PURPLE) | C(PINK) | C(YELLOW), S | G, 1, 0,
     "pollinate the flowers", "in a flower garden", "flutter between flowers", "delicate wings",
     "butterflies look for flowers", "bird"},
    {"turtle", "turtles", KIND_ANIMAL, 1.7f, 28, 40, C(GREEN) | C(BROWN), W | N | G, 3, 0,
     "keep as a slow pet", "in a pond", "hide in its shell", "a hard shell",
     "turtles live near water", "mushroom"},
    {"tree", "trees", KIND_PLANT, 0.75f, 80, 110, C(GREEN), G | R | S, 6, 0,
     "give shade on a sunny day", "in a forest", "grow very tall", "wood and leaves",
     "trees grow in the ground", "flower"},
    {"flower", "flowers", KIND_PLANT, 0.6f, 44, 64, C(RED) | C(PINK) | C(PURPLE) | C(WHITE) | C(BLUE), G, 1, 0,
     "decorate a vase", "in a flower garden", "bloom in spring", "petals and a stem",
     "flowers grow in gardens and fields", "tree"},
    {"house", "houses", KIND_BUILDING, 1.0f, 78, 104, C(WHITE) | C(YELLOW) | C(BLUE) | C(PINK) | C(GREY), G | R | S, 6, 5,
     "live in with a family", "on a quiet street", "shelter a family", "bricks",
     "people build houses on land", "boat"},
    {"traffic light", "traffic lights", KIND_THING, 0.35f, 70, 96, C(BLACK) | C(YELLOW) | C(GREY), R, 5, 0,
     "control the traffic", "at a crossroads", "change from red to green", "metal and lamps",
     "it tells cars when to stop", "lamp"},
    {"person", "people", KIND_PERSON, 0.45f, 64, 92, C(RED) | C(BLUE) | C(GREEN) | C(YELLOW) | C(PURPLE) | C(ORANGE) | C(WHITE) | C(PINK), G | F | R | N, 4, 0,
     "help carry the shopping", "at home", "walk and talk", "flesh and bone",
     "people go outside to walk and play", "dog"},
    {"box", "boxes", KIND_THING, 1.15f, 36, 54, C(BROWN) | C(WHITE) | C(RED), F | R, 3, 2,
     "pack things for a move", "in a storage room", "be stacked on top of others", "cardboard",
     "someone is moving house", "book"},
};
const int synth_n_categories = (int)(sizeof synth_categories / sizeof synth_categories[0]);

int synth_category_index(const char *name) {
    for (int i = 0; i < synth_n_categories; i++)
        if (!strcmp(synth_categories[i].name, name)) return i;
    return -1;
}

const char *synth_size_word(int c) {
    static const char *w[] = {"tiny", "tiny", "small", "medium-sized", "large", "very large", "huge"};
    return w[c < 0 ? 0 : c > 6 ? 6 : c];
}

const char *synth_size_ref(int c) {
    static const char *w[] = {"a coin", "a coin", "a hand", "a backpack", "a grown man", "a small truck", "a building"};
    return w[c < 0 ? 0 : c > 6 ? 6 : c];
}

int synth_flies(int cat) {
    const char *n = synth_categories[cat].name;
    return !strcmp(n, "bird") || !strcmp(n, "kite") || !strcmp(n, "balloon") ||
           !strcmp(n, "airplane") || !strcmp(n, "butterfly");
}
