using System.Text.Json.Nodes;

namespace SharpTune.Tokenizers.Pipeline;

/// <summary>
/// What a Split pre-tokenizer or a Replace normalizer looks for: a literal string or a regex, as tokenizer.json's
/// <c>{"String": ...}</c> / <c>{"Regex": ...}</c>. Regexes run on Oniguruma like Hugging Face tokenizers (code points,
/// Unicode classes, lookarounds), with a bound on backtracking (<see cref="RegexLimitException"/>).
/// </summary>
public sealed class TokenizerPattern
{
    private readonly Oniguruma? _regex;

    private TokenizerPattern(string? literal, string? regex, string? source)
    {
        Literal = literal;
        if (regex is not null)
            _regex = new Oniguruma(regex, source);
    }

    /// <summary>The literal string looked for (null for a regex).</summary>
    public string? Literal { get; }

    /// <summary>The regex (null for a literal).</summary>
    public string? Regex => _regex?.Pattern;

    public static TokenizerPattern FromLiteral(string literal) => new(literal ?? throw new ArgumentNullException(nameof(literal)), null, null);

    /// <summary>Compiles an Oniguruma regex; an invalid one throws <see cref="ArgumentException"/> saying why. <paramref name="source"/>
    /// (e.g. the tokenizer.json it comes from) is named when a text makes it exceed its backtracking bound.</summary>
    public static TokenizerPattern FromRegex(string regex, string? source = null) =>
        new(null, regex ?? throw new ArgumentNullException(nameof(regex)), source);

    /// <summary>The non-empty matches in <paramref name="text"/>, left to right, as (start, end) UTF-16 indices.</summary>
    public List<(int Start, int End)> Matches(string text)
    {
        var matches = new List<(int, int)>();
        Matches(text, 0, text.Length, matches);
        return matches;
    }

    /// <summary>Adds the non-empty matches in <paramref name="text"/>[<paramref name="from"/>..<paramref name="to"/>], taken as a
    /// text of its own, as indices of <paramref name="text"/>.</summary>
    internal void Matches(string text, int from, int to, List<(int Start, int End)> matches)
    {
        if (_regex is not null)
            _regex.FindMatches(text, from, to, matches);
        else if (!string.IsNullOrEmpty(Literal))
            for (var i = text.IndexOf(Literal, from, to - from, StringComparison.Ordinal); i >= 0 && i + Literal.Length <= to;
                 i = i + Literal.Length < to ? text.IndexOf(Literal, i + Literal.Length, to - i - Literal.Length, StringComparison.Ordinal) : -1)
                matches.Add((i, i + Literal.Length));
    }

    public JsonObject ToJson() => Literal is not null ? new JsonObject { ["String"] = Literal } : new JsonObject { ["Regex"] = Regex };

    public override string ToString() => Literal is not null ? $"\"{Literal}\"" : $"/{Regex}/";
}
