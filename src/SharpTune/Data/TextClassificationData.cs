using System.Globalization;

namespace SharpTune.Data;

/// <summary>Which columns hold the text, the optional second text of a pair, the label and the row id. Each name may
/// list alternatives separated by '|' (the first one a file has is used), for splits whose headers differ.</summary>
public sealed record TextClassificationColumns(string Text, string Label, string? TextPair = null, string? Id = null)
{
    /// <summary>The first alternative of <paramref name="spec"/> present in <paramref name="dataset"/>, or null.</summary>
    public static string? Resolve(Dataset dataset, string? spec) =>
        spec?.Split('|', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).FirstOrDefault(dataset.HasColumn);

    public static IEnumerable<string> Alternatives(string? spec) =>
        spec?.Split('|', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries) ?? [];
}

/// <summary>Texts (and optional pair texts) with their labels as strings, ids and origins.</summary>
public sealed record LabeledTexts(string[] Ids, string[] Texts, string?[]? Pairs, string?[] Labels, RowOrigin[] Origins)
{
    public int Count => Texts.Length;
    public bool HasLabels => Labels.All(l => l is not null);

    /// <summary>Text and pair joined by a space: what bag-of-words models see.</summary>
    public IReadOnlyList<string> JoinedTexts() =>
        Pairs is null ? Texts : Texts.Select((t, i) => Pairs[i] is { Length: > 0 } pair ? $"{t} {pair}" : t).ToArray();

    public LabeledTexts Select(IReadOnlyList<int> rows) => new(
        rows.Select(i => Ids[i]).ToArray(), rows.Select(i => Texts[i]).ToArray(), Pairs is null ? null : rows.Select(i => Pairs[i]).ToArray(),
        rows.Select(i => Labels[i]).ToArray(), rows.Select(i => Origins[i]).ToArray());
}

/// <summary>Options for turning a dataset into labelled texts.</summary>
public sealed record TextExtractionOptions
{
    /// <summary>Whether every row must have a label (false for an unlabelled test file).</summary>
    public bool RequireLabels { get; init; } = true;
    /// <summary>Labels a row may have (the training classes); others are bad rows. Null accepts any.</summary>
    public IReadOnlySet<string>? KnownLabels { get; init; }
    /// <summary>Numeric (soft) labels become "1" at or above this value and "0" below.</summary>
    public double? LabelThreshold { get; init; }
    /// <summary>Drop bad rows (returned in the report) instead of stopping.</summary>
    public bool SkipBadRows { get; init; }
}

/// <summary>Extracts labelled texts from a dataset, checking every row: a missing label, a label outside the known
/// set and an empty text are bad rows, reported with file and line.</summary>
public static class TextClassificationData
{
    public static (LabeledTexts Texts, IReadOnlyList<BadRow> BadRows) Extract(Dataset dataset, TextClassificationColumns columns,
        TextExtractionOptions? options = null)
    {
        options ??= new TextExtractionOptions();
        var source = dataset.Count > 0 ? dataset.Origin(0).File : "the data";
        string Require(string spec, string what) => TextClassificationColumns.Resolve(dataset, spec)
            ?? throw new ArgumentException($"{source} has no {what} column '{spec}'; its columns are: {string.Join(", ", dataset.ColumnNames)}");
        var text = dataset.Column(Require(columns.Text, "text"));
        var pair = columns.TextPair is null ? null : dataset.Column(Require(columns.TextPair, "text pair"));
        var labelName = TextClassificationColumns.Resolve(dataset, columns.Label);
        if (labelName is null && options.RequireLabels)
            Require(columns.Label, "label");
        var label = labelName is null ? null : dataset.Column(labelName);
        var idName = TextClassificationColumns.Resolve(dataset, columns.Id ?? "id");
        if (columns.Id is not null && idName is null)
            Require(columns.Id, "id");
        var id = idName is null ? null : dataset.Column(idName);

        var bad = new List<BadRow>();
        var keep = new List<int>();
        var labels = new string?[dataset.Count];
        for (var i = 0; i < dataset.Count; i++)
        {
            var reason = (string?)null;
            var value = label?[i]?.Trim();
            if (string.IsNullOrWhiteSpace(text[i]))
                reason = "empty text";
            else if (string.IsNullOrEmpty(value))
            {
                if (options.RequireLabels)
                    reason = "missing label";
                value = null;
            }
            else if (options.LabelThreshold is { } threshold)
            {
                if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var soft))
                    reason = $"label '{value}' is not a number (a label threshold is set)";
                else
                    value = soft >= threshold ? "1" : "0";
            }
            if (reason is null && value is not null && options.KnownLabels is { } known && !known.Contains(value))
                reason = $"label '{value}' is not one of the training labels ({string.Join(", ", known.Order())})";
            if (reason is not null)
            {
                bad.Add(new BadRow(dataset.Origin(i), reason));
                continue;
            }
            labels[i] = value;
            keep.Add(i);
        }
        RefuseStrayLabels(dataset, labels, keep, bad);
        if (bad.Count > 0 && !options.SkipBadRows)
            throw new BadRowsException(bad, "Fix the data, or skip bad rows (--skip-bad-rows).");
        var texts = new LabeledTexts(
            keep.Select(i => id?[i] ?? i.ToString(CultureInfo.InvariantCulture)).ToArray(),
            keep.Select(i => text[i]!).ToArray(),
            pair is null ? null : keep.Select(i => pair[i]).ToArray(),
            keep.Select(i => labels[i]).ToArray(),
            keep.Select(dataset.Origin).ToArray());
        return (texts, bad);
    }

    /// <summary>Labels that are numbers but for a stray few (0/1 and one "abc") are a typo, not a third class: the
    /// stray rows become bad rows. A real mix (more than a tenth not numbers) is left as the classes it names.</summary>
    private static void RefuseStrayLabels(Dataset dataset, string?[] labels, List<int> keep, List<BadRow> bad)
    {
        static bool IsNumber(string label) => double.TryParse(label, NumberStyles.Float, CultureInfo.InvariantCulture, out _);
        var labelled = keep.Where(i => labels[i] is not null).ToList();
        var stray = labelled.Where(i => !IsNumber(labels[i]!)).ToList();
        if (stray.Count == 0 || stray.Count * 10 > labelled.Count)
            return;
        var numbers = string.Join(", ", labelled.Select(i => labels[i]!).Where(IsNumber).Distinct().Order().Take(5));
        foreach (var i in stray)
            bad.Add(new BadRow(dataset.Origin(i), $"label '{labels[i]}' is not a number like the other labels ({numbers})"));
        var removed = stray.ToHashSet();
        keep.RemoveAll(removed.Contains);
        bad.Sort((a, b) => a.Origin.Line.CompareTo(b.Origin.Line));
    }
}

/// <summary>Maps label strings to class indices in scikit-learn's order (sorted; numerically when all labels are
/// numbers), so the positive class of a binary problem is the second one, as in scikit-learn.</summary>
public sealed class LabelEncoder
{
    private readonly Dictionary<string, int> _index;

    public LabelEncoder(IEnumerable<string> labels)
    {
        var distinct = labels.Distinct(StringComparer.Ordinal).ToList();
        var numeric = distinct.All(l => double.TryParse(l, NumberStyles.Float, CultureInfo.InvariantCulture, out _));
        Classes = numeric
            ? distinct.OrderBy(l => double.Parse(l, CultureInfo.InvariantCulture)).ToArray()
            : distinct.Order(StringComparer.Ordinal).ToArray();
        _index = Classes.Select((c, i) => (c, i)).ToDictionary(p => p.c, p => p.i, StringComparer.Ordinal);
    }

    public IReadOnlyList<string> Classes { get; }
    public int Count => Classes.Count;

    public int Encode(string label) => _index.TryGetValue(label, out var index)
        ? index
        : throw new ArgumentException($"unknown label '{label}' (known: {string.Join(", ", Classes)})");

    public int[] Encode(IEnumerable<string?> labels) => labels.Select(l => Encode(l ?? throw new ArgumentException("missing label"))).ToArray();

    public string Decode(int index) => Classes[index];
}
