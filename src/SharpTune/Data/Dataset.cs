namespace SharpTune.Data;

/// <summary>Where a row came from, for messages that point the user at the bad line.</summary>
public readonly record struct RowOrigin(string File, long Line)
{
    public override string ToString() => Line > 0 ? $"{File}:{Line}" : File;
}

/// <summary>A read-only view of one row of a <see cref="Dataset"/>.</summary>
public readonly struct DatasetRow(Dataset dataset, int index)
{
    public int Index => index;
    public RowOrigin Origin => dataset.Origin(index);
    public string? this[string column] => dataset.Column(column)[index];
}

/// <summary>A table of named string columns (the Hugging Face <c>datasets.Dataset</c> idea, in memory): values keep
/// their text form whatever the file format, and every row remembers its file and line.</summary>
public sealed class Dataset
{
    private readonly Dictionary<string, string?[]> _columns;
    private readonly RowOrigin[] _origins;

    public Dataset(IReadOnlyList<string> columnNames, IReadOnlyList<string?[]> columns, IReadOnlyList<RowOrigin>? origins = null)
    {
        if (columnNames.Count != columns.Count)
            throw new ArgumentException($"{columnNames.Count} column names for {columns.Count} columns");
        var rows = columns.Count == 0 ? origins?.Count ?? 0 : columns[0].Length;
        if (columns.Any(c => c.Length != rows))
            throw new ArgumentException("all columns of a dataset must have the same length");
        ColumnNames = columnNames.ToArray();
        _columns = new Dictionary<string, string?[]>(StringComparer.Ordinal);
        for (var c = 0; c < columns.Count; c++)
            if (!_columns.TryAdd(columnNames[c], columns[c]))
                throw new ArgumentException($"duplicate column name '{columnNames[c]}'");
        _origins = origins?.ToArray() ?? Enumerable.Range(1, rows).Select(i => new RowOrigin("<memory>", i)).ToArray();
        if (_origins.Length != rows)
            throw new ArgumentException($"{_origins.Length} row origins for {rows} rows");
        Count = rows;
    }

    /// <summary>A dataset from column name → values.</summary>
    public static Dataset FromColumns(IEnumerable<KeyValuePair<string, IReadOnlyList<string?>>> columns)
    {
        var list = columns.ToList();
        return new Dataset(list.Select(c => c.Key).ToList(), list.Select(c => c.Value.ToArray()).ToList());
    }

    public IReadOnlyList<string> ColumnNames { get; }
    public int Count { get; }

    public DatasetRow this[int index] => (uint)index < (uint)Count ? new DatasetRow(this, index) : throw new ArgumentOutOfRangeException(nameof(index));

    public IEnumerable<DatasetRow> Rows => Enumerable.Range(0, Count).Select(i => new DatasetRow(this, i));

    public bool HasColumn(string name) => _columns.ContainsKey(name);

    public IReadOnlyList<string?> Column(string name) =>
        _columns.TryGetValue(name, out var values)
            ? values
            : throw new ArgumentException($"no column '{name}' in {SourceDescription}; columns: {string.Join(", ", ColumnNames)}");

    public RowOrigin Origin(int index) => _origins[index];

    private string SourceDescription => Count > 0 ? _origins[0].File : "the dataset";

    /// <summary>The rows at <paramref name="indices"/>, in that order (Hugging Face's <c>select</c>).</summary>
    public Dataset Select(IEnumerable<int> indices)
    {
        var rows = indices.ToArray();
        return new Dataset(ColumnNames, ColumnNames.Select(name => rows.Select(i => _columns[name][i]).ToArray()).ToList(),
            rows.Select(i => _origins[i]).ToList());
    }

    /// <summary>Only the named columns, in that order.</summary>
    public Dataset SelectColumns(params string[] names) =>
        new(names, names.Select(name => (string?[])Column(name).ToArray()).ToList(), _origins);

    public Dataset Filter(Func<DatasetRow, bool> predicate) => Select(Rows.Where(predicate).Select(r => r.Index));

    /// <summary>Applies <paramref name="function"/> to consecutive batches; the columns it returns (one value per row
    /// of the batch) are added, or replace columns of the same name (Hugging Face's <c>map(batched=True)</c>).</summary>
    public Dataset Map(Func<Dataset, IReadOnlyDictionary<string, IReadOnlyList<string?>>> function, int batchSize = 1000)
    {
        if (batchSize < 1)
            throw new ArgumentException("batch size must be positive");
        Dictionary<string, List<string?>>? produced = null;
        for (var start = 0; start < Count; start += batchSize)
        {
            var batch = Select(Enumerable.Range(start, Math.Min(batchSize, Count - start)));
            var output = function(batch);
            produced ??= output.Keys.ToDictionary(k => k, _ => new List<string?>(Count));
            if (!produced.Keys.ToHashSet().SetEquals(output.Keys))
                throw new InvalidOperationException("a batched map must return the same columns for every batch");
            foreach (var (name, values) in output)
            {
                if (values.Count != batch.Count)
                    throw new InvalidOperationException($"map returned {values.Count} values of '{name}' for a batch of {batch.Count} rows");
                produced[name].AddRange(values);
            }
        }
        var names = ColumnNames.ToList();
        var columns = ColumnNames.Select(n => _columns[n]).ToList();
        foreach (var (name, values) in produced ?? [])
        {
            var at = names.IndexOf(name);
            if (at >= 0)
                columns[at] = values.ToArray();
            else
            {
                names.Add(name);
                columns.Add(values.ToArray());
            }
        }
        return new Dataset(names, columns, _origins);
    }

    /// <summary>The rows in a random order fixed by <paramref name="seed"/>.</summary>
    public Dataset Shuffle(int seed)
    {
        var order = Enumerable.Range(0, Count).ToArray();
        new Random(seed).Shuffle(order);
        return Select(order);
    }

    /// <summary>Splits into "train" and "test"; with <paramref name="stratifyBy"/> each value of that column keeps
    /// its proportion in both parts.</summary>
    public DatasetDict TrainTestSplit(double testSize, int seed = 0, string? stratifyBy = null)
    {
        if (testSize is <= 0 or >= 1)
            throw new ArgumentException($"test size must be in (0, 1), got {testSize}");
        var random = new Random(seed);
        var test = new List<int>();
        var train = new List<int>();
        var groups = Groups(stratifyBy).Select(g => g.ToArray()).ToList();
        var testCount = (int)Math.Ceiling(testSize * Count);
        // Each group gets its share of the test rows, rounded down; the rows left over go to the groups with the
        // largest remainders, so the test part has exactly ceil(testSize * n) rows (as scikit-learn).
        var shares = groups.Select(g => (double)testCount * g.Length / Count).ToArray();
        var takes = shares.Select(s => (int)Math.Floor(s)).ToArray();
        foreach (var g in Enumerable.Range(0, groups.Count).OrderByDescending(g => shares[g] - takes[g]).Take(testCount - takes.Sum()))
            takes[g]++;
        for (var g = 0; g < groups.Count; g++)
        {
            var members = groups[g];
            random.Shuffle(members);
            test.AddRange(members[..takes[g]]);
            train.AddRange(members[takes[g]..]);
        }
        test.Sort();
        train.Sort();
        if (test.Count == 0 || train.Count == 0)
            throw new ArgumentException($"a test size of {testSize} leaves one side of the split empty ({Count} rows)");
        return new DatasetDict { ["train"] = Select(train), ["test"] = Select(test) };
    }

    /// <summary>k (train, validation) index folds; each value of <paramref name="labelColumn"/> is dealt round-robin
    /// over the folds after a seeded shuffle, so every fold has the class proportions of the whole.</summary>
    public IReadOnlyList<(int[] Train, int[] Validation)> StratifiedKFold(int folds, string labelColumn, int seed = 0)
    {
        CheckFolds(folds);
        var random = new Random(seed);
        var assignment = new int[Count];
        var next = 0;
        foreach (var group in Groups(labelColumn).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var members = group.ToArray();
            random.Shuffle(members);
            // Continue the round-robin across classes so small classes do not all land in fold 0.
            foreach (var member in members)
                assignment[member] = next++ % folds;
        }
        return FoldsFrom(assignment, folds);
    }

    /// <summary>k folds where all rows sharing a value of <paramref name="groupColumn"/> stay in one fold; groups are
    /// placed largest first into the currently smallest fold (scikit-learn's GroupKFold balancing).</summary>
    public IReadOnlyList<(int[] Train, int[] Validation)> GroupKFold(int folds, string groupColumn)
    {
        CheckFolds(folds);
        var groups = Groups(groupColumn).ToList();
        if (groups.Count < folds)
            throw new ArgumentException($"{groups.Count} distinct values of '{groupColumn}' cannot fill {folds} folds");
        var sizes = new int[folds];
        var assignment = new int[Count];
        foreach (var group in groups.OrderByDescending(g => g.Count()).ThenBy(g => g.Key, StringComparer.Ordinal))
        {
            var fold = Array.IndexOf(sizes, sizes.Min());
            foreach (var member in group)
                assignment[member] = fold;
            sizes[fold] += group.Count();
        }
        return FoldsFrom(assignment, folds);
    }

    private void CheckFolds(int folds)
    {
        if (folds < 2 || folds > Count)
            throw new ArgumentException($"cannot make {folds} folds of {Count} rows");
    }

    private static List<(int[] Train, int[] Validation)> FoldsFrom(int[] assignment, int folds) =>
        Enumerable.Range(0, folds).Select(f => (
            Enumerable.Range(0, assignment.Length).Where(i => assignment[i] != f).ToArray(),
            Enumerable.Range(0, assignment.Length).Where(i => assignment[i] == f).ToArray())).ToList();

    private IEnumerable<IGrouping<string, int>> Groups(string? column)
    {
        if (column is null)
            return Enumerable.Range(0, Count).GroupBy(_ => "");
        var values = Column(column);
        return Enumerable.Range(0, Count).GroupBy(i => values[i] ?? "");
    }

    /// <summary>Rows of several datasets with the same columns, one after the other.</summary>
    public static Dataset Concatenate(IReadOnlyList<Dataset> parts)
    {
        if (parts.Count == 0)
            throw new ArgumentException("nothing to concatenate");
        var names = parts[0].ColumnNames;
        if (parts.Any(p => !p.ColumnNames.SequenceEqual(names)))
            throw new ArgumentException("datasets to concatenate must have the same columns");
        return new Dataset(names, names.Select(n => parts.SelectMany(p => p._columns[n]).ToArray()).ToList(),
            parts.SelectMany(p => p._origins).ToList());
    }
}

/// <summary>Named splits ("train", "validation", "test"), as Hugging Face's <c>DatasetDict</c>.</summary>
public sealed class DatasetDict : Dictionary<string, Dataset>
{
    public DatasetDict() : base(StringComparer.Ordinal)
    {
    }
}
